"""The image's install steps, run outside Docker: scripts/install.sh on a copy
of the Docker build context, then the installed gunicorn started the way the
image's CMD starts it, with the image's environment (ENVIRONMENT=production, so with an
operator's API key), serving a prediction.

Paths of the image map to temporary ones: /opt/venv -> <tmp>/venv, /app -> <tmp>/app.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from app.config import ENV_VARS
from tests.deploy.support import copy_build_context, dockerfile_stages
from tests.helpers import free_port, stop_process_group, wait_until_up

pytestmark = pytest.mark.integration

IMAGE_VENV, IMAGE_APP = "/opt/venv", "/app"


def image_environment(venv: Path, app_dir: Path) -> dict[str, str]:
    """The runtime stage's ENV with image paths mapped, over this machine's environment."""
    base = {k: v for k, v in os.environ.items() if k not in ENV_VARS and not k.startswith(("MODELSERVE_", "PYTHON"))}
    env = dict(base)
    for key, value in dockerfile_stages()[1][-1].env().items():
        value = value.replace("$PATH", base.get("PATH", "")).replace(IMAGE_VENV, str(venv))
        env[key] = value.replace(IMAGE_APP, str(app_dir))
    return env


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """Run the install script as the Dockerfile does; return (venv, app_dir, output)."""
    root = tmp_path_factory.mktemp("image")
    context = copy_build_context(root / "context")
    venv, app_dir = root / "venv", root / "app"
    env = {**os.environ, "PYTHON": sys.executable, "XGBOOST": "cpu"}
    result = subprocess.run(
        ["sh", str(context / "scripts" / "install.sh"), str(venv), str(app_dir)],
        env=env,
        capture_output=True,
        text=True,
        timeout=540,
    )
    assert result.returncode == 0, f"install.sh failed:\n{result.stdout}\n{result.stderr}"
    return venv, app_dir, result.stdout


#: An operator's API key: production refuses to start without credentials.
API_KEY = "deploy-test-" + secrets.token_urlsafe(16)
AUTH = {"X-API-Key": API_KEY}


@pytest.fixture(scope="module")
def image_server(installed):
    """The installed gunicorn, started like the image's CMD, over the demo models."""
    venv, app_dir, _ = installed
    env = image_environment(venv, app_dir)
    key = {"name": "deploy-test", "sha256": hashlib.sha256(API_KEY.encode()).hexdigest(), "roles": ["admin", "predict"]}
    env["MODELSERVE_API_KEYS"] = json.dumps([key])
    demo = subprocess.run(
        [str(venv / "bin" / "modelserve"), "create-demo-models", "--directory", str(app_dir / "models" / "trained")],
        cwd=app_dir,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 0, demo.stdout + demo.stderr
    port = free_port()
    env.update(API_HOST="127.0.0.1", API_PORT=str(port), API_WORKERS="2")  # loopback only in tests
    log_path = app_dir.parent / "gunicorn.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(venv / "bin" / "gunicorn"), "-c", "gunicorn.conf.py", "app:create_app()"],
            cwd=app_dir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            url = f"http://127.0.0.1:{port}"
            try:
                wait_until_up(url + "/openapi.json", process)
            except Exception as exc:
                raise AssertionError(f"installed gunicorn did not start ({exc}):\n{log_path.read_text()}") from None
            yield url, env
        finally:
            if process.poll() is None:
                stop_process_group(process, timeout=30)


def test_install_script_lays_out_venv_and_runtime_tree(installed):
    venv, app_dir, output = installed
    assert (venv / "bin" / "gunicorn").exists() and (venv / "bin" / "modelserve").exists()
    assert sorted(p.name for p in app_dir.iterdir() if p.name != "__pycache__") == [
        "app",
        "config",
        "gunicorn.conf.py",
        "plugins",
    ]
    assert "modelserve install: adapters custom, sklearn, xgboost from" in output
    # A non-editable install: the venv holds a real copy, not a link back to the source tree.
    site = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import app, sys; print(app.__file__)"],
        cwd="/",
        env={"PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert str(venv) in site
    # The trees extra: compiled_trees models are served by Treelite's GTIL in the image (no compiler).
    gtil = [str(venv / "bin" / "python"), "-c", "import treelite.gtil, tl2cgen"]
    subprocess.run(gtil, cwd="/", env={"PATH": os.environ["PATH"]}, capture_output=True, check=True)


def test_installed_server_predicts_with_the_demo_model(image_server):
    url, _ = image_server
    response = requests.post(url + "/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, headers=AUTH, timeout=30)
    assert response.status_code == 200, response.text
    assert response.json()["prediction_label"] == "setosa"


def test_installed_server_loads_the_builtin_adapters_from_the_runtime_tree(image_server, installed):
    url, _ = image_server
    _, app_dir, _ = installed
    adapters = requests.get(url + "/api/v1/adapters", headers=AUTH, timeout=30).json()["adapters"]
    builtins = [a for a in adapters if a["source"] == "builtin"]
    assert {a["name"] for a in builtins} == {"sklearn", "xgboost", "custom"}, adapters
    for adapter in builtins:
        assert adapter["status"] == "active", adapter
        assert Path(adapter["location"]).is_relative_to(app_dir / "plugins"), adapter


def test_image_healthcheck_command_passes_against_the_installed_server(image_server):
    """The Dockerfile's HEALTHCHECK, run as Docker would run it inside the container."""
    url, env = image_server
    command = dockerfile_stages()[1][-1].last("HEALTHCHECK").args.partition("CMD ")[2]
    words = json.loads(command)
    result = subprocess.run(words, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, f"HEALTHCHECK failed against {url}:\n{result.stderr[-2000:]}"

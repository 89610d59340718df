"""A third-party adapter package, pip-installed, found through its ``modelserve.adapters`` entry point.

The package (tests/fixtures/modelserve_echo_adapter) never imports ``app``: it only
speaks the pluggy project name. It is installed once per module into a private
``--target`` directory that is on ``sys.path`` only while a test needs it.
"""

from __future__ import annotations

import importlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.adapters import AdapterSettings
from app.plugin_manager import build_plugin_manager
from tests.helpers import PROJECT_ROOT, GunicornServer

PACKAGE_SOURCE = PROJECT_ROOT / "tests" / "fixtures" / "modelserve_echo_adapter"
MODULE = "modelserve_echo_adapter"
COEF = [1.5, -2.0, 0.25]
ROW = [2.0, 1.0, 4.0]
EXPECTED = 1.5 * 2.0 - 2.0 * 1.0 + 0.25 * 4.0  # 2.0


def forget_package() -> None:
    """Drop the package's modules so nothing outside these tests can import it from the cache."""
    for name in [m for m in sys.modules if m == MODULE or m.startswith(MODULE + ".")]:
        del sys.modules[name]
    importlib.invalidate_caches()


@pytest.fixture(scope="module")
def site_dir(tmp_path_factory) -> Path:
    """The package built and installed (no dependencies, no network) into a private directory."""
    root = tmp_path_factory.mktemp("echo_adapter")
    source = root / "src"  # build from a copy: setuptools writes build/ and *.egg-info next to the sources
    shutil.copytree(PACKAGE_SOURCE, source, ignore=shutil.ignore_patterns("build", "*.egg-info", "__pycache__"))
    target = root / "site"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            "--no-deps",
            "--no-build-isolation",
            "--no-index",
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert (target / f"{MODULE}.py").is_file()
    return target


@pytest.fixture
def echo_installed(site_dir, monkeypatch):
    """The package importable (and its entry point visible) for one test only."""
    monkeypatch.syspath_prepend(str(site_dir))
    importlib.invalidate_caches()
    yield site_dir
    forget_package()


def write_echo_model(directory: Path, name: str = "linear") -> Path:
    path = directory / f"{name}.echo"
    path.write_text(json.dumps({"n_features": len(COEF), "coef": COEF}), encoding="utf-8")
    return path


def test_the_package_does_not_import_modelserve():
    source = (PACKAGE_SOURCE / f"{MODULE}.py").read_text(encoding="utf-8")
    assert "import app" not in source and "from app" not in source
    assert 'pluggy.HookimplMarker("modelserve")' in source


def test_the_entry_point_is_found(echo_installed):
    plugins = build_plugin_manager(None, AdapterSettings())
    (info,) = [p for p in plugins.plugins if p.name == "echo"]
    assert (info.name, info.package, info.version, info.location) == (
        "echo",
        "modelserve-echo-adapter",
        "0.3.0",
        MODULE,
    )
    assert info.status == "active" and info.adapters == ["echo"]
    assert plugins.by_suffix[".echo"] == "echo"


def test_the_adapter_is_listed_and_serves_a_model(echo_installed, make_app, model_dir):
    client = make_app().test_client()
    adapters = {row["name"]: row for row in client.get("/api/v1/adapters").get_json()["adapters"]}
    echo = adapters["echo"]
    assert echo["source"] == "package" and echo["package"] == "modelserve-echo-adapter"
    assert echo["version"] == "0.3.0" and echo["file_types"] == [".echo"] and echo["status"] == "active"
    assert echo["plugin"] == "echo" and echo["error"] is None

    write_echo_model(model_dir)
    loaded = client.post("/api/v1/models/load", json={"model_name": "echo_model", "model_path": "linear.echo"})
    assert loaded.status_code == 200, loaded.get_json()
    info = loaded.get_json()["model"]
    assert (info["adapter"], info["task"], info["n_features"]) == ("echo", "regression", 3)
    assert info["model_class"] == "modelserve_echo_adapter.EchoRegressor" and info["details"] == {"coef": COEF}

    body = client.post("/api/v1/predict/echo_model", json={"features": ROW}).get_json()
    assert body["prediction"] == pytest.approx(EXPECTED)


def test_nothing_is_left_importable_after_use(site_dir, monkeypatch):
    with monkeypatch.context() as patch:
        patch.syspath_prepend(str(site_dir))
        importlib.invalidate_caches()
        assert "echo" in build_plugin_manager(None, AdapterSettings()).adapters
        assert MODULE in sys.modules
    forget_package()
    assert MODULE not in sys.modules and str(site_dir) not in sys.path
    plugins = build_plugin_manager(None, AdapterSettings())
    assert "echo" not in plugins.adapters and all(p.package != "modelserve-echo-adapter" for p in plugins.plugins)


@pytest.mark.integration
def test_the_adapter_serves_over_http_with_gunicorn(site_dir, tmp_path):
    model_dir = tmp_path / "models"
    model_dir.mkdir()
    write_echo_model(model_dir)
    pythonpath = os.pathsep.join(filter(None, [str(site_dir), os.environ.get("PYTHONPATH")]))
    config = {"models": {"model_directory": str(model_dir)}, "logging": {"level": "WARNING"}}
    with GunicornServer(tmp_path, config, workers=2, env={"PYTHONPATH": pythonpath}) as server:
        adapters = {row["name"]: row for row in server.get("/api/v1/adapters").json()["adapters"]}
        assert adapters["echo"]["source"] == "package" and adapters["echo"]["version"] == "0.3.0"
        assert adapters["echo"]["status"] == "active"

        auto = server.post("/api/v1/predict/linear", json={"features": ROW})  # auto-loaded by its suffix
        assert auto.status_code == 200, auto.text
        assert auto.json()["prediction"] == pytest.approx(EXPECTED)

        loaded = server.post("/api/v1/models/load", json={"model_name": "echo_model", "model_path": "linear.echo"})
        assert loaded.status_code == 200, loaded.text
        for _ in range(4):  # a fresh connection each time: whichever worker answers knows the model
            body = server.post("/api/v1/predict/echo_model", json={"features": ROW}).json()
            assert body["prediction"] == pytest.approx(EXPECTED)
    assert MODULE not in sys.modules

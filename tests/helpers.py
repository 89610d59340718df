"""Helpers shared by the tests: the one error-shape assertion, free ports, real servers."""

from __future__ import annotations

import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
import yaml

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ERROR_KEYS = {"code", "status", "message", "request_id"}


def _json(response: Any) -> Any:
    return response.get_json() if hasattr(response, "get_json") else response.json()


def assert_error(response: Any, status: int, *, contains: str | None = None) -> dict[str, Any]:
    """Assert ``response`` is the documented JSON error with ``status``; return its body."""
    body = _json(response)
    assert response.status_code == status, (response.status_code, body)
    assert response.headers["Content-Type"].startswith("application/json")
    assert isinstance(body, dict) and ERROR_KEYS <= body.keys(), body
    assert body["code"] == status
    assert body["request_id"] == response.headers["X-Request-ID"]
    assert "Traceback" not in str(body)
    if contains is not None:
        assert contains.lower() in str(body).lower(), body
    return body


def redis_or_skip(url: str) -> Any:
    """A Redis client for ``url``; the test is skipped when none answers (``.ci/run`` starts one)."""
    redis = pytest.importorskip("redis", reason="the redis package is not installed")
    client = redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.RedisError as exc:
        client.close()
        pytest.skip(f"no Redis answers at {url} ({exc}); start redis-server")
    return client


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def poll_until(condition: Any, what: str, timeout: float = 30, describe: Any = None) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.05)
    detail = f"\n{describe()}" if describe else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}{detail}")


def wait_until_up(url: str, process: subprocess.Popen, timeout: float = 60.0) -> None:
    """Poll ``url`` until it answers; fail early if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with {process.returncode} before answering")
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:  # refused while binding, or read timeout while workers boot
            time.sleep(0.05)
    raise TimeoutError(f"{url} did not answer within {timeout}s")


def stop_process_group(process: subprocess.Popen, timeout: float) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its children; SIGKILL after ``timeout``."""
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


class GunicornServer:
    """A real ``gunicorn -c gunicorn.conf.py "app:create_app()"`` with its own config file and port."""

    def __init__(self, tmp_path: Path, config: dict[str, Any], workers: int = 2, env: dict[str, str] | None = None):
        self.port = free_port()
        self.tmp_path = tmp_path
        tmp_path.mkdir(parents=True, exist_ok=True)
        self.config_file = tmp_path / f"config-{self.port}.yaml"
        settings = {"environment": "testing", **config}
        settings.setdefault("api", {}).update({"host": "127.0.0.1", "port": self.port, "workers": workers})
        settings.setdefault("registry", {}).setdefault("state_directory", str(tmp_path / "state"))
        settings.setdefault("plugins", {}).setdefault("directory", str(tmp_path / "plugins"))
        # Tests send hundreds of requests a minute; the ones about rate limits turn them on.
        security = {"rate_limit_enabled": False, **settings.pop("security", {})}
        self.config_file.write_text(yaml.safe_dump(settings), encoding="utf-8")
        # The security file is read after the main one: the test's security section goes there,
        # so config/security.yaml's settings (CORS, rate limits on) do not leak into the test.
        self.security_file = tmp_path / f"security-{self.port}.yaml"
        self.security_file.write_text(yaml.safe_dump({"security": security}), encoding="utf-8")
        self.env = {
            **{k: v for k, v in os.environ.items() if k not in ("API_PORT", "API_HOST", "API_WORKERS")},
            "MODELSERVE_CONFIG": str(self.config_file),
            "MODELSERVE_SECURITY_CONFIG": str(self.security_file),
            **(env or {}),
        }
        self.log_path = tmp_path / f"gunicorn-{self.port}.log"
        self.process: subprocess.Popen | None = None
        self.url = f"http://127.0.0.1:{self.port}"

    def __enter__(self) -> GunicornServer:
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "-c", "gunicorn.conf.py", "app:create_app()"],
            cwd=PROJECT_ROOT,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_until_up(self.url + "/openapi.json", self.process)
        except Exception as exc:
            self.stop()
            raise RuntimeError(f"gunicorn did not start ({exc}):\n{self.log()}") from None
        return self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            self._log.close()
            return
        stop_process_group(self.process, timeout=30)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def worker_pids(self) -> set[int]:
        out = subprocess.run(["pgrep", "-P", str(self.process.pid)], capture_output=True, text=True)
        return {int(p) for p in out.stdout.split()}

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.post(self.url + path, timeout=30, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=30, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return requests.delete(self.url + path, timeout=30, **kwargs)


@contextmanager
def captured_json_log() -> Iterator[Callable[[], list[dict[str, Any]]]]:
    """The JSON lines the ``app`` loggers write meanwhile (enter after the application is built:
    building it replaces the ``app`` logger's handlers)."""
    from app.observability import JsonFormatter, RequestIdFilter

    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(RequestIdFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("app")
    logger.addHandler(handler)
    level = logger.level
    logger.setLevel(logging.INFO)
    try:
        yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        logger.setLevel(level)
        logger.removeHandler(handler)

"""The servers of the benchmark, each started pinned to the server core.

- modelserve: ``gunicorn -c gunicorn.conf.py "app:create_app()"`` with its production stack
  (ENVIRONMENT=production, an API key, rate limits on with a limit never reached, metrics,
  JSON logs and access log, written to a file);
- the HTTP floor: the same gunicorn.conf.py (worker class, workers, threads, keep-alive)
  serving :mod:`bench.http_floor`, with no access log and no metrics;
- the bare model servers on the floor's settings, the LogisticRegression prediction with no
  production stack: :mod:`bench.bare_server` (a raw WSGI callable) and :mod:`bench.minimal_flask`
  (one Flask route);
- MLServer 1.7.1 from its own venv, ``parallel_workers=0``, the same model files.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from bench.models import ROW, mlserver_columns, penguin_rows

PROJECT_ROOT = Path(__file__).resolve().parent.parent
GUNICORN = Path(sys.executable).with_name("gunicorn")
BENCH_KEY = "ms_bench_predict_key_0123456789abcdef"
ADMIN_KEY = "ms_bench_admin_key_0123456789abcdef"
NEVER_REACHED = "100000000/minute"


#: Every port handed out in this process: servers are made (ports chosen) before any of them binds.
_HANDED_OUT: set[int] = set()


def free_port() -> int:
    return free_ports(1)[0]


def free_ports(count: int) -> list[int]:
    """``count`` free ports, none handed out before by this process (the kernel may offer one twice)."""
    found: list[int] = []
    while len(found) < count:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            port = sock.getsockname()[1]
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            found.append(port)
    return found


def post(url: str, body: Any, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    data = json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method="POST")
    request.add_header("Content-Type", "application/json")
    for name, value in (headers or {}).items():
        request.add_header(name, value)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def get(url: str, headers: dict[str, str] | None = None, timeout: float = 10.0) -> tuple[int, Any]:
    request = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()[:500]


def bench_environ(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("OPENBLAS_CORETYPE", "OPENBLAS_L2_SIZE")}
    env.update(extra)
    return env


def _gunicorn_environ(**extra: str) -> dict[str, str]:
    """:func:`bench_environ` without the variables that would override a config file's api section."""
    env = bench_environ(**extra)
    for variable in ("API_PORT", "API_HOST", "API_WORKERS", "PROMETHEUS_MULTIPROC_DIR"):
        env.pop(variable, None)
    return env


@dataclass
class Server:
    """A started server process (its own process group), its port and where it logs."""

    name: str
    port: int
    log_path: Path
    command: list[str]
    env: dict[str, str]
    cwd: Path = PROJECT_ROOT
    process: subprocess.Popen | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def start(self, core: int | None) -> float:
        """Start the process (pinned to ``core``); return the monotonic time it was started at."""
        command = ["taskset", "-c", str(core), *self.command] if core is not None else self.command
        log = self.log_path.open("ab")
        started = time.monotonic()
        self.process = subprocess.Popen(
            command, cwd=self.cwd, env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        log.close()
        return started

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        os.killpg(self.process.pid, signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # What each kind of server is asked; overridden below.
    def url(self, model: str, batch: bool = False) -> str:
        raise NotImplementedError

    def body(self, model: str, rows: list[list[float]]) -> Any:
        raise NotImplementedError

    def check(self, model: str, reply: Any, rows: int) -> None:
        """Raise unless ``reply`` is a correct answer for ``rows`` iris rows."""

    def wait_until_serving(self, model: str, started: float, timeout: float = 120.0) -> float:
        """Poll one prediction until it succeeds; return seconds since ``started``."""
        deadline = time.monotonic() + timeout
        url, body = self.url(model), self.body(model, penguin_rows(1) if model == "penguins" else [ROW])
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited; see {self.log_path}")
            try:
                status, reply = post(url, body, self.headers, timeout=5)
                if status == 200:
                    elapsed = time.monotonic() - started
                    self.check(model, reply, 1)
                    return elapsed
            except OSError:
                pass
            time.sleep(0.01)
        raise TimeoutError(f"{self.name} did not serve {model} within {timeout}s; see {self.log_path}")


class ModelServe(Server):
    def url(self, model: str, batch: bool = False) -> str:
        base = f"http://127.0.0.1:{self.port}/api/v1"
        return f"{base}/batch-predict" if batch else f"{base}/predict/{model}"

    def body(self, model: str, rows: list[Any]) -> Any:
        if len(rows) == 1:
            return {"features": rows[0]}
        return {"features": rows, "model_name": model}

    def check(self, model: str, reply: Any, rows: int) -> None:
        first = "Adelie" if model == "penguins" else "setosa"
        if rows == 1:
            assert reply["prediction_label"] == first and len(reply["probabilities"]) == 3, reply
        else:
            assert reply["count"] == rows and reply["predictions"][0]["prediction_label"] == first, reply


class HttpFloor(Server):
    def url(self, model: str, batch: bool = False) -> str:
        return f"http://127.0.0.1:{self.port}/api/v1/predict/{model}"

    def body(self, model: str, rows: list[list[float]]) -> Any:
        return {"features": rows[0]}


class BareServer(HttpFloor):
    def check(self, model: str, reply: Any, rows: int) -> None:
        assert reply["prediction_label"] == "setosa" and len(reply["probabilities"]) == 3, reply


def v2_body(rows: list[list[float]]) -> dict[str, Any]:
    """An Open Inference Protocol request for ``rows``, asking for the default output (predict): the
    cheapest request MLServer answers. modelserve's V2 rows send the very same bytes."""
    return {"inputs": [{"name": "input-0", "shape": [len(rows), 4], "datatype": "FP64", "data": rows}]}


class MLServer(Server):
    def url(self, model: str, batch: bool = False) -> str:
        return f"http://127.0.0.1:{self.port}/v2/models/{model}/infer"

    def body(self, model: str, rows: list[Any]) -> Any:
        if model == "penguins":  # a DataFrame through the V2 pd codec
            return mlserver_columns(rows)
        return v2_body(rows)

    def check(self, model: str, reply: Any, rows: int) -> None:
        output = reply["outputs"][0]
        assert output["shape"][0] == rows and output["data"][0] == ("Adelie" if model == "penguins" else 0), reply


@dataclass
class ModelServeV2(MLServer):
    """modelserve's own process asked through ``/v2`` (the Open Inference Protocol), as MLServer is asked.

    Not a process of its own: starting and stopping it are the main modelserve server's business.
    """

    main: ModelServe | None = None

    def start(self, core: int | None) -> float:
        return time.monotonic()

    def stop(self) -> None:
        pass

    def alive(self) -> bool:
        return self.main is not None and self.main.alive()


def modelserve_v2(main: ModelServe) -> ModelServeV2:
    """The V2 view of a modelserve server (the same port, key and log)."""
    return ModelServeV2(
        name="modelserve_v2",
        port=main.port,
        log_path=main.log_path,
        command=[],
        env={},
        headers=main.headers,
        main=main,
    )


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value
    return base


def _api_settings(port: int, workers: int, threads: int, worker_class: str) -> dict[str, Any]:
    """The gunicorn settings modelserve and the HTTP floor share (gunicorn.conf.py reads them)."""
    return {"host": "127.0.0.1", "port": port, "workers": workers, "threads": threads, "worker_class": worker_class}


def modelserve(
    workdir: Path,
    model_dir: Path,
    workers: int,
    threads: int,
    worker_class: str,
    log_name: str = "modelserve",
    overrides: dict[str, Any] | None = None,
) -> ModelServe:
    """modelserve in production mode: keys, rate limits (never reached), metrics, JSON logs to a file."""
    port = free_port()
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "api": _api_settings(port, workers, threads, worker_class),
        "models": {"model_directory": str(model_dir), "default_model": "iris_lr", "auto_load": True},
        "logging": {"level": "INFO", "format": "json", "access_log": True},
        "monitoring": {"enable_metrics": True},
        "registry": {"state_directory": str(workdir / "state")},
        "jobs": {"data_directory": str(workdir / "data"), "output_directory": str(workdir / "out")},
    }
    digest = hashlib.sha256
    security = {
        "security": {
            "enable_cors": True,
            "cors_origins": ["http://localhost:3000"],
            "api_keys": [
                {"name": "bench", "sha256": digest(BENCH_KEY.encode()).hexdigest(), "roles": ["predict"]},
                {"name": "bench-admin", "sha256": digest(ADMIN_KEY.encode()).hexdigest(), "roles": ["admin"]},
            ],
            "rate_limit_enabled": True,
            "rate_limits": {"predict": NEVER_REACHED, "batch_predict": NEVER_REACHED},
            "trusted_models": sorted(_sha256(p) for p in model_dir.glob("*.joblib")),
        }
    }
    overrides = dict(overrides or {})
    _merge(security["security"], overrides.pop("security", {}))
    _merge(config, overrides)
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    (workdir / "security.yaml").write_text(yaml.safe_dump(security), encoding="utf-8")
    env = _gunicorn_environ(
        ENVIRONMENT="production",
        MODELSERVE_CONFIG=str(workdir / "config.yaml"),
        MODELSERVE_SECURITY_CONFIG=str(workdir / "security.yaml"),
    )
    return ModelServe(
        name="modelserve",
        port=port,
        log_path=workdir / f"{log_name}.log",
        command=[str(GUNICORN), "-c", "gunicorn.conf.py", "app:create_app()"],
        env=env,
        headers={"X-API-Key": BENCH_KEY},
    )


def http_floor(workdir: Path, workers: int, threads: int, worker_class: str) -> HttpFloor:
    """The same gunicorn.conf.py and worker settings, serving a constant body; no access log, no metrics."""
    api = _api_settings(free_port(), workers, threads, worker_class)
    return _plain_gunicorn(HttpFloor, "floor", workdir, "bench.http_floor:app", api, {})


def bare_server(
    workdir: Path, model: Path, workers: int, threads: int, worker_class: str, flask: bool = False
) -> BareServer:
    """``model``'s prediction with no production stack on the floor's settings: a raw WSGI callable
    (:mod:`bench.bare_server`), or with ``flask`` one Flask route (:mod:`bench.minimal_flask`)."""
    api = _api_settings(free_port(), workers, threads, worker_class)
    name, target = ("flask", "bench.minimal_flask:app") if flask else ("bare", "bench.bare_server:app")
    return _plain_gunicorn(BareServer, name, workdir, target, api, {"BARE_MODEL": str(model)})


_Plain = TypeVar("_Plain", bound=HttpFloor)


def _plain_gunicorn(
    kind: type[_Plain], name: str, workdir: Path, target: str, api: dict[str, Any], extra_env: dict[str, str]
) -> _Plain:
    """A plain WSGI app under modelserve's gunicorn.conf.py, sent the same request (API key included)."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "api": api,
        "logging": {"level": "WARNING", "format": "json", "access_log": False},
        "monitoring": {"enable_metrics": False},
    }
    (workdir / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    env = _gunicorn_environ(MODELSERVE_CONFIG=str(workdir / "config.yaml"), ENVIRONMENT="development", **extra_env)
    return kind(
        name=name,
        port=api["port"],
        log_path=workdir / f"{name}.log",
        command=[str(GUNICORN), "-c", "gunicorn.conf.py", target],
        env=env,
        headers={"X-API-Key": BENCH_KEY},
    )


def mlserver(workdir: Path, venv: Path, repository: Path, log_name: str = "mlserver") -> MLServer:
    """MLServer 1.7.1 from ``venv``: inference in the server process (``parallel_workers=0``)."""
    port, grpc_port, metrics_port = free_ports(3)
    workdir.mkdir(parents=True, exist_ok=True)
    settings = {
        "host": "127.0.0.1",
        "http_port": port,
        "grpc_port": grpc_port,
        "metrics_port": metrics_port,
        "parallel_workers": 0,
        "debug": False,
    }
    (repository / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
    env = bench_environ(OMP_NUM_THREADS="1", OPENBLAS_NUM_THREADS="1", MKL_NUM_THREADS="1")
    return MLServer(
        name="mlserver",
        port=port,
        log_path=workdir / f"{log_name}.log",
        command=[str(venv / "bin" / "mlserver"), "start", str(repository)],
        env=env,
        cwd=workdir,
    )

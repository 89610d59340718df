"""Start-up time to the first successful prediction, and resident memory per worker."""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

from bench.servers import ADMIN_KEY, Server, get, mlserver, modelserve, post


def children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def rss_mb(pid: int) -> tuple[float, float]:
    """(RSS, PSS) in MiB: PSS splits pages shared with other processes between them."""
    values = {}
    for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
        parts = line.split()
        if parts[0] in ("Rss:", "Pss:"):
            values[parts[0]] = int(parts[1]) / 1024
    return round(values["Rss:"], 1), round(values["Pss:"], 1)


def startup_seconds(make: Any, repeats: int, core: int | None, model: str = "iris_lr") -> list[float]:
    """Start the server ``repeats`` times; each time, seconds from exec to the first 200 prediction."""
    times = []
    for i in range(repeats):
        server: Server = make(i)
        try:
            started = server.start(core)
            times.append(round(server.wait_until_serving(model, started), 3))
        finally:
            server.stop()
    return times


def memory(server: Server, workers: int) -> dict[str, Any]:
    """RSS of each worker once all have loaded their models and answered a few predictions."""
    assert server.process is not None
    deadline = time.monotonic() + 120
    while len(children(server.process.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    for model in ("iris_lr", "iris_rf", "iris_xgb"):
        for _ in range(20):
            status, _ = post(server.url(model), server.body(model, [[5.1, 3.5, 1.4, 0.2]]), server.headers)
            assert status == 200, (model, status)
    time.sleep(1.0)
    pids = children(server.process.pid) or [server.process.pid]
    per_worker = [rss_mb(pid) for pid in pids]
    return {
        "workers": len(pids),
        "rss_mb": [r for r, _ in per_worker],
        "pss_mb": [p for _, p in per_worker],
        "master_rss_mb": rss_mb(server.process.pid)[0] if pids != [server.process.pid] else None,
    }


def demo_models(directory: Path) -> tuple[Path, Path]:
    """make serve's demo models (iris LogisticRegression, XGBoost, ...), and an MLServer repository of them."""
    from app.demo_models import create_demo_models
    from bench.models import write_mlserver_repository

    create_demo_models(directory / "models")
    served = {"iris_classifier": "iris_classifier.joblib", "iris_xgboost": "iris_xgboost.json"}
    served["production_model"] = "production_model.joblib"
    repository = directory / "mlserver"
    write_mlserver_repository(repository, {name: directory / "models" / file for name, file in served.items()})
    return directory / "models", repository


def compute_threads(server: Server) -> Any:
    """What threadpoolctl reports inside a worker (GET /api/v1/status, admin key)."""
    status, body = get(f"http://127.0.0.1:{server.port}/api/v1/status", {"X-API-Key": ADMIN_KEY})
    if status != 200 or not isinstance(body, dict):
        return f"status endpoint answered {status}"
    pools = body.get("compute_threads")
    if not isinstance(pools, list):
        return "not reported"
    return ", ".join(f"{p['internal_api']} ({p['user_api']}): {p['num_threads']}" for p in pools)


def measure(
    root: Path,
    paths: dict[str, Path],
    venv: Path | None,
    repository: Path,
    settings: dict[str, Any],
    args: argparse.Namespace,
) -> dict[str, Any]:
    found: dict[str, Any] = {}
    model_dir = next(iter(paths.values())).parent
    # Start-up with the demo models (make serve's), on the server core and on both cores;
    # interleaved, as the throughput rounds are: modelserve, MLServer, modelserve, ...
    demo_dir, demo_repository = demo_models(root / "demo")
    for where, core in (("one_core", args.server_core), ("two_cores", None)):
        ms_times, ml_times = [], []
        for i in range(args.startup_repeats):
            ms_times += startup_seconds(
                lambda n, i=i, where=where: modelserve(root / f"start-ms-{where}-{i}", demo_dir, **settings),
                1,
                core,
                "iris_classifier",
            )
            if venv is not None:
                ml_times += startup_seconds(
                    lambda n, i=i, where=where: mlserver(root, venv, demo_repository, f"start-ml-{where}-{i}"),
                    1,
                    core,
                    "iris_classifier",
                )
        found[f"startup_s_{where}"] = {"modelserve": ms_times, "mlserver": ml_times or None}
        found[f"startup_median_s_{where}"] = {
            "modelserve": statistics.median(ms_times),
            "mlserver": statistics.median(ml_times) if ml_times else None,
        }
    # Memory: 4 workers, 3 models each, not pinned.
    four = modelserve(root / "rss-ms", model_dir, **{**settings, "workers": 4})
    try:
        four.wait_until_serving("iris_lr", four.start(None))
        found["memory_modelserve_4_workers"] = memory(four, 4)
    finally:
        four.stop()
    if venv is not None:
        single = mlserver(root, venv, repository, "rss-ml")
        try:
            single.wait_until_serving("iris_lr", single.start(None))
            found["memory_mlserver"] = memory(single, 0)
        finally:
            single.stop()
    return found

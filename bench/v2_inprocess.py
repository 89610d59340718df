"""What a V2 infer request costs in CPU inside one process, in µs per request, through Flask's test client.

    .venv/bin/python -m bench.v2_inprocess                   # µs per request, each case
    .venv/bin/python -m bench.v2_inprocess --profile 25      # and cProfile's 25 costliest functions per case
    .venv/bin/python -m bench.v2_inprocess --repeat 3        # the cases three times, interleaved

The application is the bench's production configuration (API key, rate
limits, metrics, JSON logs; :func:`bench.servers.modelserve`), built in this
process by ``create_app()``; no socket and no gunicorn, so the figures are the
request path's own CPU time (``time.process_time``), steady on a shared machine
where req/s is not. ``/api/v1/predict`` is measured beside ``/v2`` for
reference, and ``GET /v2/health/live`` as the floor: the test client, Flask
and the request pipeline with no body and no model. Each case is a V2 body of :func:`bench.servers.v2_body`, the bytes
the bench sends to MLServer.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import logging
import os
import pstats
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.models import ROW, batch_rows, train
from bench.servers import modelserve, v2_body


def cases() -> dict[str, tuple[str, bytes | None]]:
    """name -> (path, body); no body is a GET."""
    batch = batch_rows(1000)
    return {
        "v2 live (floor)": ("/v2/health/live", None),
        "v1 lr 1 row": ("/api/v1/predict/iris_lr", json.dumps({"features": ROW}).encode()),
        "v2 lr 1 row": ("/v2/models/iris_lr/infer", json.dumps(v2_body([ROW])).encode()),
        "v2 xgb 1 row": ("/v2/models/iris_xgb/infer", json.dumps(v2_body([ROW])).encode()),
        "v2 lr 1000 rows": ("/v2/models/iris_lr/infer", json.dumps(v2_body(batch)).encode()),
    }


def request(client: Any, headers: dict[str, str], path: str, body: bytes | None) -> Any:
    return client.get(path, headers=headers) if body is None else client.post(path, data=body, headers=headers)


def measure(client: Any, headers: dict[str, str], path: str, body: bytes | None, count: int) -> float:
    """µs of this process's CPU time per request, over ``count`` requests."""
    started = time.process_time()
    for _ in range(count):
        response = request(client, headers, path, body)
        if response.status_code != 200:
            raise RuntimeError(f"{path}: {response.status_code} {response.get_data(as_text=True)[:300]}")
    return (time.process_time() - started) / count * 1e6


def profile(client: Any, headers: dict[str, str], path: str, body: bytes | None, count: int, top: int) -> str:
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(count):
        request(client, headers, path, body)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("cumulative").print_stats(top)
    return out.getvalue()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=3000, help="requests per single-row case")
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--profile", type=int, default=0, metavar="TOP")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="modelserve-v2-inprocess-") as tmp:
        model_dir = Path(tmp) / "models"
        train(model_dir)
        server = modelserve(Path(tmp) / "work", model_dir, 1, 1, "gthread")
        os.environ.update({k: v for k, v in server.env.items() if k.startswith(("MODELSERVE_", "ENVIRONMENT"))})
        from app import create_app

        app = create_app()
        logging.disable(logging.CRITICAL)  # the JSON log lines to stderr would be most of the time
        client = app.test_client()
        headers = {**server.headers, "Content-Type": "application/json"}
        found = cases()
        for path, body in found.values():  # load the models, warm the caches
            measure(client, headers, path, body, 50)
        gc.collect()  # as a worker after start-up (gunicorn.conf.py's post_worker_init)
        gc.freeze()
        gc.set_threshold(10_000, 50, 100)
        results: dict[str, list[float]] = {name: [] for name in found}
        for _ in range(args.repeat):
            for name, (path, body) in found.items():
                count = args.requests // 20 if "1000" in name else args.requests
                results[name].append(measure(client, headers, path, body, count))
        for name, figures in results.items():
            print(f"{name:18} {min(figures):8.1f} µs/request  (runs: {', '.join(f'{f:.1f}' for f in figures)})")
        if args.profile:
            for name, (path, body) in found.items():
                count = args.requests // 20 if "1000" in name else args.requests
                print(f"\n=== {name}: cProfile over {count} requests ===")
                print(profile(client, headers, path, body, count, args.profile))


if __name__ == "__main__":
    main()

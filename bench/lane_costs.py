"""What each piece of a single-row prediction costs inside a real worker under load, in µs per request.

    .venv/bin/python -m bench.lane_costs                 # iris LogisticRegression, 1 connection
    .venv/bin/python -m bench.lane_costs --model iris_xgb --connections 8

A hot loop in one process underestimates the per-request cost several times
over: between two requests gunicorn's own code runs and the caches go cold.
This starts modelserve with the benchmark's production configuration on one
pinned worker, wraps the fast lane's functions in timers (each timer adds a
few tenths of a µs to itself and to the pieces around it), drives it with wrk
and prints the mean time per request of each piece and of the whole
application call (gunicorn's HTTP work around it is not counted here).
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.loadgen import ensure_wrk, run_wrk
from bench.models import ROW, train
from bench.servers import modelserve

REPORT_EVERY = 5000
_totals: dict[str, int] = {}


def _timed(name: str, function: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(function)
    def timed(*args: Any, **kwargs: Any) -> Any:
        started = time.perf_counter_ns()
        try:
            return function(*args, **kwargs)
        finally:
            _totals[name] = _totals.get(name, 0) + time.perf_counter_ns() - started

    return timed


def timed_app() -> Any:
    """The application, its lane's pieces timed; every REPORT_EVERY requests a ``LANE-COSTS`` line on stderr."""
    from app import create_app, fast_predict, inference, metrics, registry
    from app.security import rate_limits

    lane = fast_predict._Setup
    for owner, names in (
        (lane, ("check", "_identify", "answer", "_predict")),
        (fast_predict, ("_read_body", "row_matrix", "new_request_id", "recorded_run", "interpret", "single_body")),
        (inference, ("run_model", "record_prediction")),  # inside recorded_run: the model call, its metrics and log
        (registry.ModelRegistry, ("get",)),
        (rate_limits.FixedWindowCounter, ("hit",)),
        (metrics.Metrics, ("observe_request", "observe_prediction")),
    ):
        for name in names:
            setattr(owner, name, _timed(f"{getattr(owner, '__name__', owner)}.{name}", getattr(owner, name)))
    app = create_app()
    inner = app.wsgi_app
    count = 0

    def wsgi_app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        nonlocal count
        started = time.perf_counter_ns()
        body = inner(environ, start_response)
        _totals["application call"] = _totals.get("application call", 0) + time.perf_counter_ns() - started
        count += 1
        if count % REPORT_EVERY == 0:
            means = {name: total / REPORT_EVERY / 1000 for name, total in _totals.items()}
            sys.stderr.write(f"LANE-COSTS {json.dumps(means)}\n")
            sys.stderr.flush()
            _totals.clear()
        return body

    app.wsgi_app = wsgi_app  # type: ignore[method-assign]
    return app


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="iris_lr")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    args = parser.parse_args()
    ensure_wrk()
    with tempfile.TemporaryDirectory(prefix="modelserve-lane-costs-") as tmp:
        root = Path(tmp)
        train(root / "models")
        server = modelserve(root / "ms", root / "models", workers=1, threads=1, worker_class="gthread")
        server.command = [*server.command[:-1], "bench.lane_costs:timed_app()"]
        try:
            server.wait_until_serving(args.model, server.start(0))
            body = root / "body.json"
            body.write_text(json.dumps(server.body(args.model, [ROW])))
            url = server.url(args.model)
            run_wrk(url, body, server.headers, args.connections, 2, 1)  # warm up
            result = run_wrk(url, body, server.headers, args.connections, args.duration, 1)
        finally:
            server.stop()
        reports = re.findall(r"LANE-COSTS (\{.*\})", server.log_path.read_text(encoding="utf-8"))
    if not reports:
        raise SystemExit(f"no LANE-COSTS line: fewer than {REPORT_EVERY} requests were answered")
    costs = json.loads(reports[-1])
    print(f"{args.model}, {args.connections} connection(s): {result['rps']:,.0f} req/s with the timers")
    print(f"{'piece':40} µs per request (mean of the last {REPORT_EVERY:,})")
    for name, micros in sorted(costs.items(), key=lambda item: -item[1]):
        print(f"{name:40} {micros:6.1f}")


if __name__ == "__main__":
    main()

"""The bench's V2 rows alone, briefly: modelserve's /v2 and MLServer, the very same request bytes.

``python -m bench.v2_rows [--duration 3]``: trains the bench's models, starts
modelserve (the bench's production settings) and MLServer 1.7.1 on one core,
checks their outputs are the same (:mod:`bench.v2_equality`), then runs wrk
from the other core on single rows (LogisticRegression, XGBoost; 1 and 8
connections) and the 1,000-row batch. ``make bench`` measures the same rows
within its interleaved rounds; this is for trying a change quickly.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

from bench.loadgen import ensure_wrk, run_wrk
from bench.models import ROW, batch_rows, train, write_mlserver_repository
from bench.run import MLSERVER_VENV, ensure_mlserver, v2_equality
from bench.servers import mlserver, modelserve, modelserve_v2

CELLS = [("single", "iris_lr", 1), ("single", "iris_xgb", 1), ("single", "iris_lr", 8), ("single", "iris_xgb", 8)]
CELLS += [("batch", "iris_lr", 1)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=3, help="seconds per wrk run")
    parser.add_argument("--workers", type=int, default=1)
    args = parser.parse_args()
    ensure_wrk()
    problem = ensure_mlserver(MLSERVER_VENV)
    if problem:
        raise SystemExit(f"MLServer is not available: {problem}")
    with tempfile.TemporaryDirectory(prefix="modelserve-v2-rows-") as tmp:
        root = Path(tmp)
        paths = train(root / "models")
        write_mlserver_repository(root / "mlserver-models", paths)
        ours = modelserve(root / "modelserve", root / "models", args.workers, 1, "gthread")
        servers = {"modelserve": ours, "modelserve_v2": modelserve_v2(ours)}
        servers["mlserver"] = mlserver(root / "mlserver", MLSERVER_VENV, root / "mlserver-models")
        try:
            for server in servers.values():
                server.wait_until_serving("iris_lr", server.start(0))
            if any(found for titles in (v2_equality(servers) or {}).values() for found in titles.values()):
                raise SystemExit("modelserve's V2 outputs differ from MLServer's (above)")
            for kind, model, connections in CELLS:
                rows = batch_rows(1000) if kind == "batch" else [ROW]
                for name in ("modelserve_v2", "mlserver"):
                    server = servers[name]
                    body = root / f"body-{name}-{model}-{kind}.json"
                    body.write_text(json.dumps(server.body(model, rows), separators=(",", ":")), encoding="utf-8")
                    run_wrk(server.url(model), body, server.headers, connections, 1, 1)  # warm
                    result = run_wrk(server.url(model), body, server.headers, connections, args.duration, 1)
                    rate = result["rps"] * len(rows)
                    unit = "rows/s" if len(rows) > 1 else "req/s"
                    print(
                        f"{kind:6} {model:8} c={connections} {name:13} {rate:11.0f} {unit}"
                        f"  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms  errors {result['errors']}",
                        flush=True,
                    )
        finally:
            for server in servers.values():
                server.stop()


if __name__ == "__main__":
    main()

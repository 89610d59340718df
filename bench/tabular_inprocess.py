"""CPU µs per request for the penguins Pipeline in one process, through Flask's test client.

    .venv/bin/python -m bench.tabular_inprocess                    # runtime.tabular_kernel as configured (on)
    .venv/bin/python -m bench.tabular_inprocess --tabular-kernel off
    .venv/bin/python -m bench.tabular_inprocess --single 5000 --batch 300

The whole request path (parsing, checks, the model, the answer) without HTTP or
gunicorn: a before/after measure of the model's share that the machine's other
load hardly moves, since it counts this process's CPU time (``time.process_time``),
not wall time. Three bodies: one row as ``features`` (an object), the same row as
V2's ``pd`` columns, and a 1,000-row ``/batch-predict``. ``make bench`` remains
the measure against MLServer.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from app.demo_models import penguins_data, penguins_pipeline
from bench.models import mlserver_columns, penguin_rows


def make_client(root: Path, tabular_kernel: bool | None) -> Any:
    from app import create_app

    model_dir = root / "models"
    model_dir.mkdir()
    penguins_pipeline(*penguins_data(), model_dir / "penguins.joblib")
    (model_dir / "penguins.meta.json").write_text(json.dumps({"name": "penguins"}), encoding="utf-8")
    runtime = {} if tabular_kernel is None else {"tabular_kernel": tabular_kernel}
    config = {
        "environment": "testing",
        "models": {"model_directory": str(model_dir), "default_model": "penguins"},
        "registry": {"state_directory": str(root / "state")},
        "logging": {"level": "WARNING"},
        "runtime": runtime,
        "security": {"rate_limit_enabled": False},
    }
    return create_app(config).test_client()


def per_request(client: Any, url: str, body: dict[str, Any], count: int) -> float:
    """CPU µs per POST over ``count`` requests, after a few unmeasured ones (the body encoded once, beforehand)."""
    data = json.dumps(body).encode()
    for _ in range(min(50, count)):
        response = client.post(url, data=data, content_type="application/json")
        assert response.status_code == 200, response.get_data(as_text=True)
    started = time.process_time()
    for _ in range(count):
        client.post(url, data=data, content_type="application/json")
    return (time.process_time() - started) / count * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tabular-kernel", choices=("on", "off"), default=None)
    parser.add_argument("--single", type=int, default=3000, help="single-row requests per body")
    parser.add_argument("--batch", type=int, default=200, help="1,000-row requests")
    args = parser.parse_args()
    wanted = None if args.tabular_kernel is None else args.tabular_kernel == "on"
    with tempfile.TemporaryDirectory() as tmp:
        client = make_client(Path(tmp), wanted)
        info = client.get("/api/v1/models/penguins/info").get_json()
        print(f"kernel: {info['details'].get('kernel')}, tabular kernel: {info['details'].get('tabular_kernel')}")
        row = penguin_rows(1)[0]
        cells = [
            ("one row, features", "/api/v1/predict/penguins", {"features": row}, args.single),
            ("one row, V2 pd", "/v2/models/penguins/infer", mlserver_columns([row]), args.single),
            (
                "1,000 rows, batch-predict",
                "/api/v1/batch-predict",
                {"features": penguin_rows(1000), "model_name": "penguins"},
                args.batch,
            ),
        ]
        for name, url, body, count in cells:
            print(f"{name:28s} {per_request(client, url, body, count):9.1f} µs/request ({count} requests)")


if __name__ == "__main__":
    main()

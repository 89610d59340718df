"""Peak memory of a batch-scoring job: score an N-row CSV (default 1,000,000) and report peak RSS.

    .venv/bin/python bench/jobs_memory.py                     # 1,000,000 rows, chunk_rows 50,000
    .venv/bin/python bench/jobs_memory.py --rows 200000 --chunk-rows 10000

Everything happens in a temporary directory: an iris LogisticRegression, the CSV
(id + four features), the job store and the output. The job runs through the
real service (submit, embedded executor, runner, CSV out) in this process, so the
process's peak RSS (``ru_maxrss``) bounds what scoring the file needed. Not part of
``make test``.
"""

from __future__ import annotations

import argparse
import json
import platform
import resource
import sys
import tempfile
import time
from pathlib import Path

from app.services import services

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def current_rss_mb() -> float:
    with open("/proc/self/statm") as fh:
        return int(fh.read().split()[1]) * resource.getpagesize() / 2**20


def write_model(model_dir: Path) -> None:
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.linear_model import LogisticRegression

    from app.demo_models import LABELS, training_versions

    model_dir.mkdir(parents=True)
    X, y = load_iris(return_X_y=True)
    joblib.dump(LogisticRegression(max_iter=1000).fit(X, y), model_dir / "bench.joblib")
    meta = {"labels": LABELS, "feature_names": FEATURES, "training": training_versions()}
    (model_dir / "bench.meta.json").write_text(json.dumps(meta))


def write_csv(path: Path, rows: int) -> None:
    """Iris rows with a little deterministic jitter, streamed to disk."""
    from sklearn.datasets import load_iris

    X = load_iris().data
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        fh.write("id," + ",".join(FEATURES) + "\n")
        for i in range(rows):
            r = X[i % len(X)]
            j = (i % 7) * 0.01
            fh.write(f"{i},{r[0] + j:.2f},{r[1]:.2f},{r[2] - j:.2f},{r[3]:.2f}\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--chunk-rows", type=int, default=50_000)
    parser.add_argument("--probabilities", action="store_true", help="also write probability columns")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="modelserve-bench-") as tmp:
        root = Path(tmp)
        write_model(root / "models")
        started = time.perf_counter()
        write_csv(root / "data" / "big.csv", args.rows)
        written = time.perf_counter() - started
        size_mb = (root / "data" / "big.csv").stat().st_size / 2**20

        from app import create_app

        app = create_app(
            {
                "environment": "testing",
                "logging": {"level": "WARNING"},
                "models": {"model_directory": str(root / "models"), "default_model": "bench"},
                "registry": {"state_directory": str(root / "state")},
                "plugins": {"directory": str(root / "plugins")},
                "jobs": {
                    "data_directory": str(root / "data"),
                    "output_directory": str(root / "out"),
                    "chunk_rows": args.chunk_rows,
                    "poll_interval_ms": 20,
                },
            }
        )
        service = services(app).jobs
        services(app).registry.get("bench")
        before_peak, before_rss = peak_rss_mb(), current_rss_mb()
        request = {
            "data_path": "big.csv",
            "output_path": "big_scored.csv",
            "model_name": "bench",
            "return_probabilities": args.probabilities,
            "on_error": "fail",
            "overwrite": False,
            "id_column": None,
            "delimiter": ",",
        }
        started = time.perf_counter()
        job, _ = service.submit(request, None)
        while (job := service.get(job["job_id"]))["status"] in ("queued", "running"):
            time.sleep(0.05)
        elapsed = time.perf_counter() - started
        service.executor.stop("benchmark over")
        out_mb = (root / "out" / "big_scored.csv").stat().st_size / 2**20
        report = {
            "python": platform.python_version(),
            "rows": args.rows,
            "chunk_rows": args.chunk_rows,
            "status": job["status"],
            "rows_done": job["rows_done"],
            "input_mb": round(size_mb, 1),
            "output_mb": round(out_mb, 1),
            "csv_written_s": round(written, 1),
            "job_seconds": round(elapsed, 1),
            "rows_per_second": round(job["rows_done"] / elapsed),
            "rss_before_job_mb": round(before_rss, 1),
            "peak_rss_before_job_mb": round(before_peak, 1),
            "peak_rss_mb": round(peak_rss_mb(), 1),
            "peak_growth_mb": round(peak_rss_mb() - before_peak, 1),
        }
        print(json.dumps(report, indent=2))
        if job["status"] != "completed":
            sys.exit(f"job {job['status']}: {job['error']}")


if __name__ == "__main__":
    main()

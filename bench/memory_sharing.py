"""Model memory shared across workers: total PSS for 1, 2, 4 and 8 workers, shared and unshared.

The model is the one users reported: a RandomForestClassifier of 150 trees on
60,000 rows x 20 features (a joblib file of about 181 MB), trained once into
``var/bench/memory-sharing/`` and reused. For each worker count, modelserve
serves it with ``runtime.share_models`` on (every worker maps one layout file)
and off (every worker unpickles its own copy); the table adds up the
proportional set size (PSS, from ``/proc/<pid>/smaps_rollup``) of the gunicorn
master and its workers, once every worker has answered predictions on the
10,000 rows. Then, with both servers up side by side: req/s of single-row
predictions at 1 and 8 connections (interleaved rounds), seconds from start to
the first prediction (a cold start writes the shared layout; a warm one finds
it), and whether the 10,000 rows get the same answers from both servers and
from the estimator in this process, bit for bit.

    .venv/bin/python -m bench.memory_sharing                    # what make bench runs after bench.run
    .venv/bin/python -m bench.memory_sharing --no-speed         # memory, start-up and answers only
    .venv/bin/python -m bench.memory_sharing --workers 1,4 --rounds 2 --duration 5
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from bench.footprint import children, rss_mb
from bench.loadgen import ensure_wrk, run_wrk
from bench.servers import ADMIN_KEY, PROJECT_ROOT, ModelServe, get, modelserve, post

MODEL_DIR = PROJECT_ROOT / "var" / "bench" / "memory-sharing"
RESULTS = PROJECT_ROOT / "bench" / "results"
NAME = "forest"
TREES, ROWS, FEATURES = 150, 60_000, 20
CHECK_ROWS = 10_000
BATCH = 1000


def forest(model_dir: Path = MODEL_DIR) -> Path:
    """The issue's forest, trained once (about a minute on two cores) and reused."""
    path = model_dir / f"{NAME}.joblib"
    if path.exists():
        return path
    import joblib
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    model_dir.mkdir(parents=True, exist_ok=True)
    print(f"training the {TREES}-tree forest on {ROWS:,} rows into {path} ...", flush=True)
    X, y = make_classification(n_samples=ROWS, n_features=FEATURES, n_informative=15, flip_y=0.25, random_state=0)
    model = RandomForestClassifier(n_estimators=TREES, random_state=0, n_jobs=2).fit(X, y)
    model.set_params(n_jobs=None)
    temporary = path.with_suffix(".tmp")
    joblib.dump(model, temporary)
    temporary.rename(path)
    return path


def check_rows() -> np.ndarray:
    return np.random.default_rng(16).normal(size=(CHECK_ROWS, FEATURES)) * 2


def server(root: Path, model_dir: Path, shared: bool, workers: int, tag: str) -> ModelServe:
    overrides = {"runtime": {"share_models": shared}, "models": {"default_model": NAME}}
    workdir = root / f"{'shared' if shared else 'unshared'}-{tag}"
    return modelserve(workdir, model_dir, workers, 1, "gthread", overrides=overrides)


def first_prediction(srv: ModelServe, started: float, timeout: float = 600.0) -> float:
    """Seconds from ``started`` to the first 200 answer of a single-row prediction."""
    deadline = time.monotonic() + timeout
    body = {"features": [0.0] * FEATURES}
    while time.monotonic() < deadline:
        if not srv.alive():
            raise RuntimeError(f"the server exited; see {srv.log_path}")
        try:
            status, _ = post(srv.url(NAME), body, srv.headers, timeout=30)
            if status == 200:
                return time.monotonic() - started
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"no prediction within {timeout}s; see {srv.log_path}")


def predict_all(srv: ModelServe, rows: np.ndarray) -> np.ndarray:
    """The probabilities the server gives for ``rows``, in batches."""
    url = srv.url(NAME, batch=True)
    found = []
    for start in range(0, len(rows), BATCH):
        body = {"features": rows[start : start + BATCH].tolist(), "model_name": NAME, "return_probabilities": True}
        status, reply = post(url, body, srv.headers, timeout=300)
        if status != 200:
            raise RuntimeError(f"batch prediction answered {status}: {reply}")
        found += [item["probabilities"] for item in reply["predictions"]]
    return np.asarray(found, dtype=np.float64)


#: CPU seconds: a worker spends several times this on one batch of the check rows, an idle one
#: (its heartbeat) about a tenth of it during a round.
SERVED_CPU_S = 0.05
#: Rounds of batches sent before giving up on a worker the others keep beating to new connections.
MAX_ROUNDS = 20


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of ``pid`` (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def quiet(pids: set[int], timeout: float = 120.0) -> None:
    """Wait until none of ``pids`` spends CPU time any more (each has finished starting)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = {pid: cpu_seconds(pid) for pid in pids}
        time.sleep(0.5)
        if all(cpu_seconds(pid) - cpu < SERVED_CPU_S / 5 for pid, cpu in before.items()):
            return
    raise TimeoutError(f"workers {sorted(pids)} still busy after {timeout}s")


def total_pss(srv: ModelServe, workers: int, rows: np.ndarray) -> dict[str, Any]:
    """PSS of the master and its workers once each worker has served (a few times over) the check rows."""
    assert srv.process is not None
    deadline = time.monotonic() + 600
    while len(children(srv.process.pid)) < workers and time.monotonic() < deadline:
        time.sleep(0.1)
    # New connections land on whichever worker accepts first, and a busy machine lets some workers
    # win every race: rounds of batches go on until every worker has spent a batch's CPU time.
    idle = set(children(srv.process.pid))
    quiet(idle)  # workers still loading the model would pass for workers that served
    for _ in range(MAX_ROUNDS):
        before = {pid: cpu_seconds(pid) for pid in idle}
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(lambda _: predict_all(srv, rows[: 2 * BATCH]), range(3 * workers)))
        idle = {pid for pid, cpu in before.items() if cpu_seconds(pid) - cpu < SERVED_CPU_S}
        if not idle:
            break
    else:
        raise RuntimeError(f"workers {sorted(idle)} served no batch in {MAX_ROUNDS} rounds")
    pids = [srv.process.pid, *children(srv.process.pid)]
    pss = [rss_mb(pid)[1] for pid in pids]
    status, body = get(f"http://127.0.0.1:{srv.port}/api/v1/status", {"X-API-Key": ADMIN_KEY})
    reported = body.get("model_memory") if status == 200 and isinstance(body, dict) else None
    return {"total_pss_mib": round(sum(pss), 1), "pss_mib": pss, "worker_reported": reported}


#: The three ways a machine can be serving the forest: shared with the layout written by one of the
#: workers (a first start), shared with the layout already there (any later start), unshared.
MODES = (("shared_cold", True), ("shared_warm", True), ("unshared", False))


def memory_table(root: Path, model_dir: Path, counts: list[int], rows: np.ndarray) -> list[dict[str, Any]]:
    table = []
    for workers in counts:
        for mode, shared in MODES:
            # The warm start reuses the cold one's state directory, where its layout is.
            srv = server(root, model_dir, shared, workers, f"mem{workers}")
            try:
                first_prediction(srv, srv.start(None))
                found = total_pss(srv, workers, rows)
            finally:
                srv.stop()
            entry = {"workers": workers, "mode": mode, **found}
            print(json.dumps(entry), flush=True)
            table.append(entry)
    return table


def startup(root: Path, model_dir: Path, workers: int) -> dict[str, float]:
    """Seconds to the first prediction: unshared; shared with no layout yet (cold); shared again (warm)."""
    found = {}
    for label, shared, tag in (
        ("unshared", False, "start"),
        ("shared_cold", True, "start"),
        ("shared_warm", True, "start"),
    ):
        srv = server(root, model_dir, shared, workers, tag)
        try:
            found[label] = round(first_prediction(srv, srv.start(None)), 2)
        finally:
            srv.stop()
    return found


def speed(servers: dict[str, ModelServe], root: Path, rounds: int, duration: int) -> dict[str, Any]:
    """Single-row req/s of both servers, interleaved round by round, at 1 and 8 connections."""
    ensure_wrk()
    body = root / "row.json"
    body.write_text(json.dumps({"features": [0.5] * FEATURES}), encoding="utf-8")
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        for connections in (1, 8):
            for label, srv in servers.items():
                result = run_wrk(srv.url(NAME), body, srv.headers, connections, duration, None)
                if result["errors"]:
                    raise RuntimeError(f"{label}: {result['errors']} errors under wrk")
                runs.setdefault(f"{label}_c{connections}", []).append(round(result["rps"], 1))
    medians = {key: statistics.median(values) for key, values in runs.items()}
    ratios = {f"c{c}": round(medians[f"shared_c{c}"] / medians[f"unshared_c{c}"], 3) for c in (1, 8)}
    return {"runs": runs, "median_rps": medians, "shared_over_unshared": ratios}


def markdown(result: dict[str, Any]) -> str:
    lines = [
        f"# Shared model memory ({result['date']})",
        "",
        f"`{result['command']}` at commit {result.get('commit')}; model: {result['model']}.",
        "",
        "| workers | shared, first start (MiB) | shared, later starts (MiB) | unshared (MiB) "
        "| first start vs 1 worker | later starts vs 1 worker | unshared vs 1 worker "
        "| first start vs 1 unshared worker |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    by = {(e["workers"], e["mode"]): e["total_pss_mib"] for e in result["memory"]}
    counts = sorted({e["workers"] for e in result["memory"]})
    one = {mode: by[(counts[0], mode)] for mode, _ in MODES}
    for workers in counts:
        cold, warm, unshared = (by[(workers, mode)] for mode, _ in MODES)
        lines.append(
            f"| {workers} | {cold} | {warm} | {unshared} | {cold / one['shared_cold']:.2f}x "
            f"| {warm / one['shared_warm']:.2f}x | {unshared / one['unshared']:.2f}x | {cold / one['unshared']:.2f}x |"
        )
    lines += ["", f"The shared layout file: {result.get('layout_mib')} MiB (in the page cache once per machine).", ""]
    lines += [f"Start-up to the first prediction (s): {result['startup']}.", ""]
    lines += [f"Answers on {CHECK_ROWS:,} rows: {result['answers']}.", ""]
    if result.get("speed"):
        lines.append(
            f"Single-row req/s (medians): {result['speed']['median_rps']}; shared/unshared: "
            f"{result['speed']['shared_over_unshared']}."
        )
    return "\n".join(lines) + "\n"


def _commit() -> str | None:
    """The commit the figures were measured at (a ``+`` when the tree had changes)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    except OSError:
        return None
    return head.stdout.strip() + ("+" if dirty.stdout.strip() else "") if head.returncode == 0 else None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=lambda s: [int(c) for c in s.split(",")], default=[1, 2, 4, 8])
    parser.add_argument("--speed-workers", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--no-speed", action="store_true")
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()
    started_at = datetime.now(UTC)
    path = forest()
    model_dir = path.parent
    rows = check_rows()
    import joblib

    expected = joblib.load(path).predict_proba(rows)
    result: dict[str, Any] = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": " ".join(["python -m bench.memory_sharing", *sys.argv[1:]]),
        "commit": _commit(),
        "model": f"RandomForestClassifier, {TREES} trees, {ROWS:,} x {FEATURES}, "
        f"{path.stat().st_size / 1e6:.0f} MB joblib",
    }
    with tempfile.TemporaryDirectory(prefix="modelserve-sharing-") as tmp:
        root = Path(tmp)
        result["memory"] = memory_table(root, model_dir, args.workers, rows)
        layouts = list(root.glob("shared-*/state/shared-models/*.forest"))
        result["layout_mib"] = round(layouts[0].stat().st_size / 2**20, 1) if layouts else None
        result["startup"] = startup(root, model_dir, args.speed_workers)
        servers = {
            "shared": server(root, model_dir, True, args.speed_workers, "speed"),
            "unshared": server(root, model_dir, False, args.speed_workers, "speed"),
        }
        try:
            for srv in servers.values():
                first_prediction(srv, srv.start(None))
            answers = {label: predict_all(srv, rows) for label, srv in servers.items()}
            result["answers"] = {
                "shared_equals_estimator": bool(np.array_equal(answers["shared"], expected)),
                "unshared_equals_estimator": bool(np.array_equal(answers["unshared"], expected)),
                "shared_equals_unshared": bool(np.array_equal(answers["shared"], answers["unshared"])),
            }
            if not args.no_speed:
                result["speed"] = speed(servers, root, args.rounds, args.duration)
        finally:
            for srv in servers.values():
                srv.stop()
    text = markdown(result)
    print("\n" + text)
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "memory-sharing.md").write_text(text, encoding="utf-8")
    (args.results / "memory-sharing.json").write_text(json.dumps(result, indent=2), encoding="utf-8")


if __name__ == "__main__":
    main()

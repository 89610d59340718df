"""``make bench``: modelserve (production stack) against the HTTP floor and MLServer 1.7.1.

The same prediction with no production stack, as a raw WSGI callable
(:mod:`bench.bare_server`) and as one Flask route (:mod:`bench.minimal_flask`),
is measured beside the floor: what the answer alone costs on this HTTP stack,
and what modelserve's stack costs over Flask itself.

    .venv/bin/python -m bench.run                      # what make bench runs
    .venv/bin/python -m bench.run --rounds 5 --duration 10
    .venv/bin/python -m bench.run --no-mlserver        # the other columns only

The servers run pinned to one core (``--server-core``) and wrk to the other
(``--load-core``); every cell is measured round by round, servers interleaved
(A B C A B C ...), because the machine is shared. Medians of the rounds are
reported, and ratios are taken within each round before their median. Raw
numbers go to ``bench/results/runs/<stamp>/``; the summary to
``bench/results/latest.md`` and ``latest.json``, and the latest run's raw numbers
(one JSON line per wrk run) to ``latest-raw.jsonl``. Never part of ``make test``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import footprint, path_costs, report
from bench.loadgen import ensure_wrk, run_wrk
from bench.models import (
    BATCHED,
    COMPILED,
    MODELS,
    batch_rows,
    penguin_rows,
    train,
    train_penguins,
    write_mlserver_repository,
)
from bench.models import ROW as IRIS_ROW
from bench.servers import PROJECT_ROOT, Server, bare_server, http_floor, mlserver, modelserve, modelserve_v2
from bench.v2_equality import compare

RESULTS = PROJECT_ROOT / "bench" / "results"
MLSERVER_VENV = PROJECT_ROOT / "var" / "bench" / "mlserver-venv"
PLAIN = report.PLAIN  # the servers that answer the LogisticRegression row only, in the floor's cells
MLSERVER_PACKAGES = ["mlserver==1.7.1", "mlserver-sklearn==1.7.1", "mlserver-xgboost==1.7.1", "uvloop==0.21.0"]


def ensure_mlserver(venv: Path) -> str | None:
    """Create MLServer's own venv when missing; return None, or why it cannot be had."""
    marker = venv / ".installed-1.7.1"
    if marker.exists():
        return None
    print(f"installing MLServer 1.7.1 into {venv} ...", flush=True)
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True, text=True)
        subprocess.run(
            [str(venv / "bin" / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
            + MLSERVER_PACKAGES,
            check=True,
            capture_output=True,
            text=True,
            timeout=900,
        )
    except subprocess.CalledProcessError as exc:
        return f"pip install {' '.join(MLSERVER_PACKAGES)} failed: {(exc.stderr or exc.stdout)[-800:]}"
    except subprocess.TimeoutExpired:
        return "pip install of MLServer did not finish within 15 minutes"
    marker.touch()
    return None


def gunicorn_settings(args: argparse.Namespace) -> dict[str, Any]:
    return {"workers": args.workers, "threads": args.threads, "worker_class": args.worker_class}


def write_bodies(workdir: Path, servers: dict[str, Server]) -> dict[tuple[str, str, str], Path]:
    """One JSON body file per (server, model, kind) for wrk to send."""
    bodies: dict[tuple[str, str, str], Path] = {}
    batches = {"iris_lr": batch_rows(1000), "penguins": penguin_rows(1000)}
    for name, server in servers.items():
        for model in MODELS:
            kinds: dict[str, list[Any]] = {"single": penguin_rows(1) if model == "penguins" else [IRIS_ROW]}
            if model in BATCHED and name not in PLAIN:
                kinds["batch"] = batches[model]
            for kind, rows in kinds.items():
                path = workdir / f"body-{name}-{model}-{kind}.json"
                path.write_text(json.dumps(server.body(model, rows), separators=(",", ":")), encoding="utf-8")
                bodies[(name, model, kind)] = path
    return bodies


def plan(args: argparse.Namespace, names: list[str]) -> list[tuple[str, str, int, list[str]]]:
    """The cells of one round, each with the servers to measure in turn: (kind, model, connections, servers)."""
    cells = []
    others = [n for n in names if n not in PLAIN]
    for connections in args.connections:
        cells.append(("single", "floor", connections, [n for n in names if n in PLAIN]))
        for model in MODELS:
            cells.append(("single", model, connections, others))
    for connections in args.batch_connections:
        for model in BATCHED:
            cells.append(("batch", model, connections, others))
    return [cell for cell in cells if cell[1] in ("floor", *args.models)]


def same_outputs(servers: dict[str, Server], bodies: dict, model: str = "penguins") -> None:
    """modelserve and MLServer predict the same classes for the 1,000-row penguins batch (or say where not)."""
    from bench.servers import post

    if "mlserver" not in servers or model not in MODELS:
        return
    ours = post(
        servers["modelserve"].url(model, True),
        json.loads(bodies[("modelserve", model, "batch")].read_text()),
        servers["modelserve"].headers,
    )[1]
    theirs = post(servers["mlserver"].url(model, True), json.loads(bodies[("mlserver", model, "batch")].read_text()))[1]
    labels, other = [p["prediction_label"] for p in ours["predictions"]], theirs["outputs"][0]["data"]
    if labels != other:
        differ = next(i for i, (a, b) in enumerate(zip(labels, other, strict=True)) if a != b)
        raise AssertionError(
            f"{model}: modelserve and MLServer differ at row {differ}: {labels[differ]} != {other[differ]}"
        )
    print(f"{model}: modelserve and MLServer agree on all {len(labels)} rows", flush=True)


def measure(args: argparse.Namespace, servers: dict[str, Server], bodies: dict, raw_file: Path) -> list[dict]:
    rows: list[dict] = []
    names = list(servers)
    cells = plan(args, names)
    print(f"{len(cells)} cells x {args.rounds} rounds, {args.duration}s each", flush=True)
    # Warm every server on every body once (imports, caches, first-call paths).
    for kind, model, _, who in cells:
        for name in who:
            body_model = "iris_lr" if name in PLAIN else model
            server = servers[name]
            run_wrk(
                server.url(body_model, kind == "batch"),
                bodies[(name, body_model, kind)],
                server.headers,
                4,
                1,
                args.load_core,
            )
    with raw_file.open("a", encoding="utf-8") as raw:
        for round_no in range(1, args.rounds + 1):
            for kind, model, connections, who in cells:
                for name in who:
                    body_model = "iris_lr" if name in PLAIN else model
                    server = servers[name]
                    result = run_wrk(
                        server.url(body_model, kind == "batch"),
                        bodies[(name, body_model, kind)],
                        server.headers,
                        connections,
                        args.duration,
                        args.load_core,
                    )
                    entry = {
                        "round": round_no,
                        "kind": kind,
                        "model": model,
                        "connections": connections,
                        "server": name,
                        "loadavg": os.getloadavg()[0],
                        **result,
                    }
                    rows.append(entry)
                    raw.write(json.dumps(entry) + "\n")
                    print(
                        f"round {round_no} {kind:6} {model:8} c={connections:<3} {name:10} "
                        f"{result['rps']:9.1f} req/s  p50 {result['p50_ms']:.2f} ms  p99 {result['p99_ms']:.2f} ms"
                        + (f"  ERRORS {result['errors']}" if result["errors"] else ""),
                        flush=True,
                    )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=5, help="seconds per wrk run")
    parser.add_argument("--connections", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8, 64])
    parser.add_argument("--batch-connections", type=lambda s: [int(c) for c in s.split(",")], default=[1, 8])
    parser.add_argument("--workers", type=int, default=1, help="gunicorn workers on the server core")
    parser.add_argument("--threads", type=int, default=16, help="gunicorn threads per worker (api.threads)")
    parser.add_argument("--worker-class", default="gthread")
    parser.add_argument("--server-core", type=int, default=0)
    parser.add_argument("--load-core", type=int, default=1)
    parser.add_argument("--startup-repeats", type=int, default=3)
    parser.add_argument("--no-mlserver", action="store_true")
    parser.add_argument(
        "--models", type=lambda s: s.split(","), default=list(MODELS), help="models to measure (default: all)"
    )
    parser.add_argument(
        "--plain-trees", action="store_true", help="serve the forest and XGBoost without Treelite (no compiled_trees)"
    )
    parser.add_argument("--mlserver-venv", type=Path, default=MLSERVER_VENV)
    parser.add_argument("--results", type=Path, default=RESULTS)
    args = parser.parse_args()

    started_at = datetime.now(UTC)
    stamp = started_at.strftime("%Y%m%dT%H%M%SZ")
    run_dir = args.results / "runs" / stamp
    run_dir.mkdir(parents=True, exist_ok=True)
    ensure_wrk()
    mlserver_problem = "skipped (--no-mlserver)" if args.no_mlserver else ensure_mlserver(args.mlserver_venv)
    if mlserver_problem:
        print(f"MLServer will not be measured: {mlserver_problem}", flush=True)
    loadavg_before = os.getloadavg()

    with tempfile.TemporaryDirectory(prefix="modelserve-bench-") as tmp:
        root = Path(tmp)
        compiled = () if args.plain_trees else COMPILED
        paths = train(root / "models", compiled)
        repository = root / "mlserver-models"
        write_mlserver_repository(repository, paths)
        venv = None if mlserver_problem else args.mlserver_venv
        settings = gunicorn_settings(args)

        foot = footprint.measure(root, paths, venv, repository, settings, args)
        print(json.dumps(foot, indent=2), flush=True)
        paths["penguins"] = train_penguins(root / "models")  # after the footprint, which measures the iris models
        write_mlserver_repository(repository, {"penguins": paths["penguins"]})

        servers: dict[str, Server] = {
            "modelserve": modelserve(root / "modelserve", root / "models", **settings),
            "floor": http_floor(root / "floor", **settings),
            "bare": bare_server(root / "bare", paths["iris_lr"], **settings),
            "flask": bare_server(root / "flask", paths["iris_lr"], **settings, flask=True),
        }
        servers["modelserve_v2"] = modelserve_v2(servers["modelserve"])  # the same process, asked through /v2
        if venv is not None:
            servers["mlserver"] = mlserver(root / "mlserver", venv, repository)
        try:
            for server in servers.values():
                started = server.start(args.server_core)
                server.wait_until_serving("iris_lr", started)
            threads = footprint.compute_threads(servers["modelserve"])
            equality = v2_equality(servers, ("iris_lr", "iris_xgb", "penguins"))
            bodies = write_bodies(root, servers)
            same_outputs(servers, bodies)
            rows = measure(args, servers, bodies, run_dir / "raw.jsonl")
        finally:
            for server in servers.values():
                server.stop()
        log = servers["modelserve"].log_path
        log_lines = sum(1 for _ in log.open("rb"))
    # The one path's pieces, sampled in a worker of their own after the rounds.
    pieces = [path_costs.measure("iris_lr", batch, 1, args.duration * 2) for batch in (False, True)]

    meta = {
        "date": started_at.strftime("%Y-%m-%d %H:%M UTC"),
        "command": "make bench  (" + " ".join(["python -m bench.run", *sys.argv[1:]]) + ")",
        "machine": f"{os.cpu_count()} cores, {platform.processor() or platform.machine()}, {_cpu_model()}",
        "python": platform.python_version(),
        "versions": _versions(args.mlserver_venv if not mlserver_problem else None),
        "gunicorn": settings,
        "rounds": args.rounds,
        "duration_s": args.duration,
        "loadavg_before": loadavg_before,
        "loadavg_after": os.getloadavg(),
        "mlserver": mlserver_problem or "measured",
        "compiled_trees": list(compiled),
        "modelserve_log_lines": log_lines,
        "compute_threads": threads,
        "footprint": foot,
        "git": _git_head(),
        "path_costs": pieces,
        "v2_equality": equality,
    }
    summary = report.summarize(rows, meta)
    text = report.markdown(summary)
    print("\n" + text)
    (run_dir / "summary.md").write_text(text, encoding="utf-8")
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    (args.results / "latest.md").write_text(text, encoding="utf-8")
    (args.results / "latest.json").write_text(json.dumps(summary, indent=2), encoding="utf-8")
    shutil.copyfile(run_dir / "raw.jsonl", args.results / "latest-raw.jsonl")  # every wrk run, kept with the summary
    print(f"raw output: {run_dir}")


def v2_equality(
    servers: dict[str, Server], models: tuple[str, ...] = ("iris_lr", "iris_xgb")
) -> dict[str, dict[str, list[str]]] | None:
    """Each model's differences between modelserve's /v2 and MLServer's answers to the same requests
    (the penguins Pipeline's: a DataFrame through MLServer's pd codec, the very same body to both)."""
    if "mlserver" not in servers:
        return None
    ours, theirs = servers["modelserve_v2"], servers["mlserver"]
    found = {
        model: compare(ours.url(model), theirs.url(model), ours.headers, "penguins" if model == "penguins" else "iris")
        for model in models
    }
    print(f"V2 outputs against MLServer's: {json.dumps(found)}", flush=True)
    return found


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown CPU"


def _versions(venv: Path | None) -> dict[str, str]:
    from importlib.metadata import version

    found = {}
    for package in ("flask", "gunicorn", "scikit-learn", "xgboost-cpu", "numpy", "orjson", "treelite", "tl2cgen"):
        try:
            found[package] = version(package)
        except Exception:
            continue
    if venv is not None:
        done = subprocess.run(
            [str(venv / "bin" / "python"), "-c", "import importlib.metadata as m; print(m.version('mlserver'))"],
            capture_output=True,
            text=True,
        )
        found["mlserver"] = done.stdout.strip() or "?"
    return found


def _git_head() -> str:
    done = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True)
    dirty = subprocess.run(
        ["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT, capture_output=True, text=True
    )
    return done.stdout.strip() + ("+uncommitted" if dirty.stdout.strip() else "")


if __name__ == "__main__":
    main()

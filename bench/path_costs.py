"""What each piece of the one request path costs inside a real worker under load, in µs per request.

    .venv/bin/python -m bench.path_costs                      # iris LogisticRegression, one row, 1 connection
    .venv/bin/python -m bench.path_costs --batch              # a 1,000-row batch
    .venv/bin/python -m bench.path_costs --model iris_xgb --connections 8
    .venv/bin/python -m bench.path_costs --top 40             # also the functions with the most time

Starts modelserve with the benchmark's production configuration on one
worker pinned to core 0, drives it with wrk from core 1, and samples the
worker with py-spy (no instrumentation in the worker: a hot loop in one
process, or timers around each function, misjudge the cost per request).
Each sample is given to the innermost piece of :data:`PIECES` on its stack;
py-spy samples the thread holding the GIL, so the samples share out the
worker's user CPU time: a piece's share times the worker's user CPU time per
request (from ``/proc``, over the same seconds) is its µs per request. Time
in the kernel (socket reads and writes, the heartbeat, polling), during which
the GIL is free, is one row of its own, from the same ``/proc`` figures. py-spy is
installed into ``var/bench/tools`` from PyPI when missing; ``--keep`` keeps
the collapsed stacks (a flame graph can be drawn from them).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path
from typing import Any

from bench.footprint import children
from bench.loadgen import ensure_wrk, run_wrk
from bench.models import ROW, batch_rows, train
from bench.servers import PROJECT_ROOT, modelserve

TOOLS = PROJECT_ROOT / "var" / "bench" / "tools"
PROFILES = PROJECT_ROOT / "bench" / "results" / "profiles"

#: (piece, what a frame of it looks like in py-spy's output), innermost pieces first.
PIECES: list[tuple[str, tuple[str, ...]]] = [
    ("pipeline: rate limit (limits)", ("RateLimits.hit (",)),
    ("pipeline: access check (credentials, role)", ("AccessControl.check (",)),
    ("pipeline: request id", ("request_id_from (",)),
    ("pipeline: body size and content type", ("check_body (app/hygiene.py",)),
    ("pipeline: CORS", ("CorsPolicy.headers (",)),
    ("pipeline: request metrics", ("Metrics.observe_request (",)),
    ("pipeline: the rest (headers)", ("RequestPipeline.before (", "RequestPipeline.after (")),
    ("the model", ("run_model (app/inference.py",)),
    ("prediction metrics and log line", ("record_prediction (app/observability.py",)),
    ("classes, labels, probabilities", ("interpret (app/inference.py",)),
    ("answer encoding (orjson)", ("single_answer (app/answers.py", "batch_answer (app/answers.py")),
    ("rows fitted to the model", ("model_input (app/model_input.py",)),
    ("registry lookup", ("ServingRegistry.get (",)),
    ("features checked as one array", ("_deserialize (app/api/fields.py",)),
    ("JSON body parsing (orjson)", ("JsonBodyParser.load_json (",)),
    ("request schema (webargs, marshmallow)", ("Parser.parse (webargs/core.py",)),
    ("view: response object", ("Response.__init__ (werkzeug",)),
    ("view: the rest, flask-smorest's decorators", ("Flask.dispatch_request (flask/app.py",)),
    ("Flask: request context, routing, response, the rest", ("Flask.wsgi_app (flask/app.py",)),
    ("gunicorn: access log line", ("JsonLogger.access (app/gunicorn_logging.py",)),
    ("gunicorn: parsing the request", ("Parser.__next__ (gunicorn/http/parser.py",)),
    ("gunicorn: writing the response", ("Response.write (gunicorn", "Response.close (gunicorn")),
    (
        "gunicorn: event loop, heartbeat, thread hand-over",
        ("ThreadWorker.run (gunicorn", "ThreadPoolExecutor.submit (", "PollableMethodQueue"),
    ),
]
OUTSIDE = "gunicorn: connections, the rest"


def py_spy() -> Path:
    binary = TOOLS / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return binary


def piece_of(frames: list[str]) -> str:
    """The innermost piece on a stack (frames from the root down)."""
    for frame in reversed(frames):
        for name, marks in PIECES:
            if any(mark in frame for mark in marks):
                return name
    return OUTSIDE


KERNEL = "kernel: sockets, polling, other system calls"


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU time of a process so far (``/proc/<pid>/stat``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    tick = os.sysconf("SC_CLK_TCK")
    return int(fields[11]) / tick, int(fields[12]) / tick


#: A thread waiting with nothing to do (gthread's poller and idle pool thread): not the worker's CPU time.
IDLE = ("select (selectors.py", "Condition.wait (threading.py", "_worker (concurrent/futures/thread.py")


def busy_stacks(collapsed: Path) -> list[tuple[list[str], int]]:
    """py-spy's raw stacks (frames from the root down, with their sample counts), idle threads left out."""
    found = []
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        frames = stack.split(";")
        if samples.isdigit() and not any(mark in frames[-1] for mark in IDLE):
            found.append((frames, int(samples)))
    return found


def top(collapsed: Path, count: int) -> str:
    """The functions with the most inclusive and self time, as shares of the busy samples."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for frames, n in busy_stacks(collapsed):
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} busy samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"--- {title} ---")
        out += [f"{100 * n / max(1, total):5.1f}%  {frame}" for frame, n in counter.most_common(count)]
    return "\n".join(out)


def costs(collapsed: Path, user_us_per_request: float, system_us_per_request: float = 0.0) -> list[dict[str, Any]]:
    """Each piece's share of the user CPU time and µs per request, largest first; the kernel's time as one piece."""
    by_piece: Counter[str] = Counter()
    for frames, n in busy_stacks(collapsed):
        by_piece[piece_of(frames)] += n
    total = sum(by_piece.values()) or 1
    cpu = user_us_per_request + system_us_per_request
    found = [{"piece": piece, "us": user_us_per_request * n / total} for piece, n in by_piece.items()]
    if system_us_per_request:
        found.append({"piece": KERNEL, "us": system_us_per_request})
    for piece in found:
        piece["share"] = piece["us"] / cpu if cpu else 0.0
    return sorted(found, key=lambda piece: -piece["us"])


def measure(
    model: str, batch: bool, connections: int, duration: int, rate: int = 100, keep: Path | None = None
) -> dict[str, Any]:
    """Run modelserve under wrk with py-spy on its worker; return req/s, CPU µs per request and the pieces.

    ``keep``: where to copy py-spy's collapsed stacks.
    """
    ensure_wrk()
    spy = py_spy()
    with tempfile.TemporaryDirectory(prefix="modelserve-path-costs-") as tmp:
        root = Path(tmp)
        train(root / "models")
        server = modelserve(root / "ms", root / "models", workers=1, threads=1, worker_class="gthread")
        try:
            server.wait_until_serving(model, server.start(0))
            body = root / "body.json"
            body.write_text(json.dumps(server.body(model, batch_rows(1000) if batch else [ROW])), encoding="utf-8")
            url = server.url(model, batch)
            run_wrk(url, body, server.headers, connections, 2, 1)  # warm up
            worker = children(server.process.pid)[0]
            collapsed = root / "stacks.txt"
            command = ["taskset", "-c", "1", str(spy), "record", "--pid", str(worker), "--rate", str(rate)]
            # The GIL's holder only (Python's time), in blocking samples: non-blocking ones tear stacks apart.
            command += ["--duration", str(duration), "--format", "raw", "--output", str(collapsed), "--gil"]
            recorder = threading.Thread(target=subprocess.run, args=(command,), kwargs={"capture_output": True})
            cpu_before = cpu_seconds(worker)
            recorder.start()
            result = run_wrk(url, body, server.headers, connections, duration, 1)
            cpu_after = cpu_seconds(worker)
            recorder.join()
            requests = max(1, result["requests"])
            user_us, system_us = (
                (after - before) * 1e6 / requests for before, after in zip(cpu_before, cpu_after, strict=True)
            )
            cpu_us = user_us + system_us
            pieces = costs(collapsed, user_us, system_us)
            if keep is not None:
                keep.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(collapsed, keep)
        finally:
            server.stop()
    return {
        "model": model,
        "kind": "batch" if batch else "single",
        "connections": connections,
        "rps_under_py_spy": result["rps"],
        "cpu_us_per_request": cpu_us,
        "pieces": pieces,
    }


def markdown(found: dict[str, Any]) -> str:
    what = "1,000-row batch" if found["kind"] == "batch" else "one row"
    lines = [
        f"| {found['model']}, {what}, {found['connections']} connection(s): piece of the path | share "
        f"| µs per request (of {found['cpu_us_per_request']:,.0f} µs CPU) |",
        "|---|---:|---:|",
    ]
    for piece in found["pieces"]:
        lines.append(f"| {piece['piece']} | {100 * piece['share']:.1f}% | {piece['us']:,.1f} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="iris_lr")
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--rate", type=int, default=100, help="py-spy samples per second")
    parser.add_argument("--top", type=int, default=0, help="also print this many functions with the most time")
    parser.add_argument("--keep", type=Path, default=None, help="copy py-spy's collapsed stacks here")
    args = parser.parse_args()
    keep = args.keep or (PROFILES / f"{args.model}-{'batch' if args.batch else 'single'}-c{args.connections}.txt")
    found = measure(args.model, args.batch, args.connections, args.duration, args.rate, keep)
    print(f"{found['rps_under_py_spy']:,.0f} req/s under py-spy; collapsed stacks: {keep}")
    print(markdown(found))
    if args.top:
        print(top(keep, args.top))


if __name__ == "__main__":
    main()

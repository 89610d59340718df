"""Where a modelserve worker spends its time under load: py-spy on one worker while wrk drives it.

    .venv/bin/python -m bench.profile --model iris_lr            # single rows, 1 connection
    .venv/bin/python -m bench.profile --model iris_lr --batch --connections 1

Starts modelserve with the benchmark's production configuration and one
worker pinned to core 0, runs wrk on core 1, samples the worker with py-spy
(installed into ``var/bench/tools`` from PyPI when missing) and prints the
functions with the most inclusive and self time. The collapsed stacks are
kept under ``bench/results/profiles/`` (a flame graph can be drawn from them).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
from collections import Counter
from pathlib import Path

from bench.footprint import children
from bench.loadgen import ensure_wrk, run_wrk
from bench.models import ROW, batch_rows, train
from bench.servers import PROJECT_ROOT, modelserve

#: py-spy options; the default samples only the thread holding the GIL (where Python time goes).
EXTRA = os.environ.get("PYSPY_ARGS", "--nonblocking --gil").split()
TOOLS = PROJECT_ROOT / "var" / "bench" / "tools"


def py_spy() -> Path:
    binary = TOOLS / "bin" / "py-spy"
    if not binary.exists():
        subprocess.run([sys.executable, "-m", "venv", str(TOOLS)], check=True)
        subprocess.run([str(TOOLS / "bin" / "pip"), "install", "-q", "py-spy"], check=True)
    return binary


def top(collapsed: Path, count: int) -> str:
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.read_text().splitlines():
        stack, _, samples = line.rpartition(" ")
        n = int(samples)
        frames = stack.split(";")
        total += n
        own[frames[-1]] += n
        for frame in set(frames):
            inclusive[frame] += n
    out = [f"{total} samples"]
    for title, counter in (("inclusive", inclusive), ("self", own)):
        out.append(f"--- {title} ---")
        for frame, n in counter.most_common(count):
            out.append(f"{100 * n / total:5.1f}%  {frame}")
    return "\n".join(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="iris_lr")
    parser.add_argument("--batch", action="store_true")
    parser.add_argument("--connections", type=int, default=1)
    parser.add_argument("--duration", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--top", type=int, default=45)
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args()
    ensure_wrk()
    spy = py_spy()
    out_dir = PROJECT_ROOT / "bench" / "results" / "profiles"
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"{args.model}-{'batch' if args.batch else 'single'}-c{args.connections}"
    collapsed = out_dir / f"{name}.collapsed.txt"
    with tempfile.TemporaryDirectory(prefix="modelserve-profile-") as tmp:
        root = Path(tmp)
        train(root / "models")
        server = modelserve(root / "ms", root / "models", workers=1, threads=args.threads, worker_class="gthread")
        try:
            server.wait_until_serving(args.model, server.start(0))
            rows = batch_rows(1000) if args.batch else [ROW]
            body = root / "body.json"
            import json

            body.write_text(json.dumps(server.body(args.model, rows)))
            url = server.url(args.model, args.batch)
            run_wrk(url, body, server.headers, args.connections, 2, 1)  # warm up
            worker = children(server.process.pid)[0]
            spy_cmd = ["taskset", "-c", "1", str(spy), "record", "--pid", str(worker), "--rate", str(args.rate)]
            spy_cmd += ["--duration", str(args.duration), "--format", "raw", "--output", str(collapsed), *EXTRA]
            recorder = threading.Thread(target=subprocess.run, args=(spy_cmd,), kwargs={"capture_output": True})
            recorder.start()
            result = run_wrk(url, body, server.headers, args.connections, args.duration, 1)
            recorder.join()
        finally:
            server.stop()
    print(f"{name}: {result['rps']:.1f} req/s, p50 {result['p50_ms']:.2f} ms (under py-spy)")
    print(top(collapsed, args.top))
    print(f"collapsed stacks: {collapsed}")


if __name__ == "__main__":
    main()

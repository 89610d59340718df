"""wrk, pinned to the load core, POSTing one JSON body over keep-alive connections."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

LUA = Path(__file__).resolve().parent / "wrk_post.lua"


def ensure_wrk() -> str:
    """The wrk binary; installed from Debian's package when missing."""
    found = shutil.which("wrk")
    if found:
        return found
    print("wrk is missing: apt-get install wrk", flush=True)
    subprocess.run(["apt-get", "update", "-qq"], check=True)
    subprocess.run(
        ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "wrk"],
        check=True,
        env={"DEBIAN_FRONTEND": "noninteractive", "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"},
    )
    found = shutil.which("wrk")
    if not found:
        raise RuntimeError("wrk is still missing after apt-get install wrk")
    return found


def run_wrk(
    url: str,
    body_file: Path,
    headers: dict[str, str],
    connections: int,
    duration: int,
    core: int | None,
    timeout_s: int = 10,
) -> dict:
    """One wrk run; returns its numbers (req/s, latency percentiles in ms, errors)."""
    command = [ensure_wrk(), "-t1", f"-c{connections}", f"-d{duration}s", f"--timeout={timeout_s}s", "--latency"]
    command += ["-s", str(LUA), url, "--", str(body_file)]
    command += [f"{name}: {value}" for name, value in headers.items()]
    if core is not None:
        command = ["taskset", "-c", str(core), *command]
    done = subprocess.run(command, capture_output=True, text=True, timeout=duration + 60)
    line = next((ln for ln in done.stdout.splitlines() if ln.startswith("BENCH ")), None)
    if done.returncode != 0 or line is None:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stdout[-500:]} {done.stderr[-500:]}")
    raw = json.loads(line.removeprefix("BENCH "))
    seconds = raw["duration_us"] / 1e6
    errors = sum(raw[k] for k in ("non_2xx", "connect_errors", "read_errors", "write_errors", "timeouts"))
    return {
        "rps": raw["requests"] / seconds,
        "p50_ms": raw["p50_us"] / 1000,
        "p90_ms": raw["p90_us"] / 1000,
        "p99_ms": raw["p99_us"] / 1000,
        "max_ms": raw["max_us"] / 1000,
        "requests": raw["requests"],
        "errors": errors,
        "raw": raw,
    }

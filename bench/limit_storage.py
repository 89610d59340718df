"""µs per rate-limit hit in each storage, as the access check calls it (a count and the window for the headers).

    .venv/bin/python -m bench.limit_storage                                # memory:// and shared-memory://
    .venv/bin/python -m bench.limit_storage redis://127.0.0.1:6379/13      # and a Redis

One client key of its own (no test counts it) under a limit it never
reaches; the best of 5 rounds of 20,000 calls of
:meth:`app.security.rate_limits.RateLimits.hit`, in one process.
"""

from __future__ import annotations

import sys
import tempfile
import timeit
from pathlib import Path

from app.security.rate_limits import build_rate_limits

CALLS, ROUNDS = 20_000, 5


def us_per_hit(uri: str, state_directory: str) -> float:
    limits = build_rate_limits(
        {"rate_limit_storage": uri, "rate_limits": {"predict": "1000000000/minute"}},
        lambda limit, key: None,
        Path(state_directory),
    )
    best = min(timeit.repeat(lambda: limits.hit("predict", "addr:bench.limit_storage"), number=CALLS, repeat=ROUNDS))
    return best / CALLS * 1e6


def main(argv: list[str]) -> None:
    with tempfile.TemporaryDirectory() as state_directory:
        for uri in ("memory://", "shared-memory://", *argv):
            print(f"{uri:32s} {us_per_hit(uri, state_directory):7.2f} µs per hit")


if __name__ == "__main__":
    main(sys.argv[1:])

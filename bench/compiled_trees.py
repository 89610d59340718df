"""The compiled-trees backends side by side: compile time, one row and 1,000 rows, model call only.

    .venv/bin/python -m bench.compiled_trees [--opt -O2] [--trees-per-unit 50] [--core 1]

Trains the bench models (iris RandomForest(100), XGBoost 100 rounds x 3 classes)
into a temporary directory, compiles each into a fresh cache (timed), and times
``predict`` with timeit for the native library, Treelite's GTIL and the plain
model's own fast path (the adapter's kernel without compiled_trees). Not part
of ``make test``: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
import timeit
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench.models import ROW, batch_rows, train


def per_call_us(call: Callable[[], object], seconds: float = 0.5) -> float:
    """The best of 5 timeit repeats, in microseconds per call."""
    number = max(1, int(seconds / max(timeit.timeit(call, number=3) / 3, 1e-7) / 5))
    return min(timeit.repeat(call, number=number, repeat=5)) / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--opt", default=None, help="replace -O1 with this optimisation flag, e.g. -O2")
    parser.add_argument("--trees-per-unit", type=int, default=None, help="trees per translation unit")
    parser.add_argument("--core", type=int, default=None, help="pin this process to one core")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})

    from app import native_trees
    from app.adapters import AdapterSettings
    from app.compiled_trees import compile_trees
    from app.plugin_manager import build_plugin_manager

    if args.opt:
        native_trees.CFLAGS = tuple(args.opt if f.startswith("-O") else f for f in native_trees.CFLAGS)
    if args.trees_per_unit:
        native_trees.TREES_PER_UNIT = args.trees_per_unit
    one = np.array([ROW], dtype=np.float64)
    thousand = np.array(batch_rows(1000), dtype=np.float64)
    with tempfile.TemporaryDirectory() as where:
        root = Path(where)
        paths = train(root / "models", compiled=())
        print(f"flags {' '.join(native_trees.CFLAGS)}, {native_trees.TREES_PER_UNIT} trees per unit")
        for adapter, name in (("sklearn", "iris_rf"), ("xgboost", "iris_xgb")):
            plain = build_plugin_manager(None, AdapterSettings()).adapters[adapter].load(paths[name], {})
            source = plain.estimator if adapter == "sklearn" else plain.booster
            cache = root / f"cache-{name}"
            started = time.perf_counter()
            compile_trees(source, adapter, 1, cache)
            compile_s = time.perf_counter() - started
            started = time.perf_counter()
            native, gtil = compile_trees(source, adapter, 1, cache)
            reuse_s = time.perf_counter() - started
            settings = AdapterSettings(compiled_trees=True, compiled_trees_cache=cache)
            served = build_plugin_manager(None, settings).adapters[adapter].load(paths[name], {})
            kernel = plain.describe().extra["kernel"]
            print(
                f"{name}: compile {compile_s:.2f} s, cached {reuse_s:.3f} s; "
                f"the adapter serves {served.describe().extra['kernel']}"
            )
            for label, predict in (("native", native.predict), ("gtil", gtil.predict), (kernel, plain.predict_proba)):
                print(
                    f"  {label:16s} 1 row {per_call_us(lambda p=predict: p(one)):9.2f} us"
                    f"   1,000 rows {per_call_us(lambda p=predict: p(thousand)) / 1000:8.3f} ms"
                )


if __name__ == "__main__":
    main()

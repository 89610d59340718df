"""Tree ensembles compiled to C by tl2cgen and called through ctypes: the fastest compiled_trees backend.

tl2cgen turns a Treelite model into plain C (one ``if`` per split); the system C
compiler makes a shared library of it, together with a few lines of our own
(``_ENTRY_POINTS``): float64 rows in, the model's transformed outputs
(probabilities, or regression values) out, in one call per batch, on the
calling thread. Neither tl2cgen's code nor ours uses OpenMP or starts a thread,
whatever ``runtime.compute_threads`` says: even a 1,000-row batch is quick on
one core. tl2cgen itself runs in a child process on a cache
miss only, so a worker never loads its runtime (nor its OpenMP library), and
its console chatter stays out of the server's logs.

tl2cgen.Predictor costs far more per single-row call than the row itself (its
DMatrix and thread pool), and a ctypes call costs more with each argument. So
one row goes through a zero-argument entry point with its input and output in
the library's own static buffers (guarded by a lock: another thread at that
moment takes the batch path). What each backend costs per call is measured by
:mod:`bench.compiled_trees` and reported in the compiled trees guide.

Libraries are cached per model content (see :mod:`app.native_trees_cache`). A
loaded library stays mapped until the worker exits (ctypes cannot unload one
safely): tens of KB per distinct model content a worker has served.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np

from app.native_trees_cache import CompileFailed, LibraryCache, NativeUnavailable

#: -O1 rather than -O2: on the bench models, a little slower on large batches, the same for one row,
#: and a noticeably shorter compile (which a worker waits for on a cache miss).
CFLAGS = ("-O1", "-std=c99", "-fPIC", "-fvisibility=hidden")
#: Trees per translation unit: units compile side by side (tl2cgen's ``parallel_comp``), which
#: shortens the compile of a large forest on several cores.
TREES_PER_UNIT = 50
MAX_UNITS = 8
CODEGEN_TIMEOUT_S = 60.0
COMPILE_TIMEOUT_S = 20.0

#: Our entry points, compiled into the same library as tl2cgen's code. tl2cgen's
#: ``union Entry`` marks a missing feature with ``missing == -1``; its ``fvalue``
#: is float or double (the model's threshold type). Both libraries compare
#: features as float32 (XGBoost, and scikit-learn's trees), so values are rounded
#: to float first: a rounded value never has the marker's bit pattern, even
#: stored as a double (its low 29 bits are zero).
_ENTRY_POINTS = r"""
#include <math.h>
#include <stdint.h>
#include "header.h"

#if N_TARGET != 1
#error "modelserve serves single-target tree ensembles only"
#endif

#define EXPORT __attribute__((visibility("default")))

EXPORT double modelserve_row[MODELSERVE_NUM_FEATURE];
EXPORT MODELSERVE_LEAF modelserve_out[MAX_N_CLASS];

EXPORT int32_t modelserve_num_feature(void) { return get_num_feature(); }
EXPORT int32_t modelserve_num_output(void) { return MAX_N_CLASS; }
EXPORT int32_t modelserve_leaf_bytes(void) { return (int32_t)sizeof(MODELSERVE_LEAF); }

static void predict_row(const double* x, union Entry* entry, MODELSERVE_LEAF* out) {
  for (int j = 0; j < MODELSERVE_NUM_FEATURE; ++j) {
    if (isnan(x[j])) {
      entry[j].missing = -1;
    } else {
      entry[j].fvalue = (float)x[j];
    }
  }
  for (int k = 0; k < MAX_N_CLASS; ++k) out[k] = 0;
  predict(entry, 0, out);
}

EXPORT int32_t modelserve_predict_rows(const double* X, int64_t rows, int64_t cols, MODELSERVE_LEAF* out) {
  union Entry entry[MODELSERVE_NUM_FEATURE];
  if (cols != MODELSERVE_NUM_FEATURE) return -1;
  for (int64_t i = 0; i < rows; ++i) predict_row(X + i * cols, entry, out + i * MAX_N_CLASS);
  return 0;
}

EXPORT void modelserve_predict_one(void) {
  union Entry entry[MODELSERVE_NUM_FEATURE];
  predict_row(modelserve_row, entry, modelserve_out);
}
"""

#: Run by ``sys.executable -I`` in a temporary directory holding ``model.tl``.
_CODEGEN = """
import json, sys, treelite, tl2cgen
with open("model.tl", "rb") as f:
    model = treelite.Model.deserialize_bytes(f.read())
tl2cgen.generate_c_code(model, ".", json.loads(sys.argv[1]))
"""

_PREDICT_SIGNATURE = re.compile(r"void predict\(union Entry\* data, int pred_margin, (float|double)\* result\);")


def native_predictor(model: Any, cache_dir: Path) -> NativePredictor:
    """A predictor over ``model``'s compiled library, built or taken from ``cache_dir``.

    Raises :class:`NativeUnavailable` naming why when it cannot (the caller serves GTIL).
    """
    try:
        version = metadata.version("tl2cgen")
    except metadata.PackageNotFoundError:
        raise NativeUnavailable("tl2cgen is not installed (pip install 'modelserve[trees]')") from None
    if model.num_feature < 1:
        raise NativeUnavailable("the model has no features")
    units = min(MAX_UNITS, max(1, -(-model.num_tree // TREES_PER_UNIT)))
    params = {"parallel_comp": units} if units > 1 else {}
    model_bytes = model.serialize_bytes()
    key = library_key(model_bytes, version, params)
    cache = LibraryCache(cache_dir)
    path = cache.library(key, lambda target: build_library(model_bytes, params, model.num_feature, target))
    return NativePredictor(load_library(path), model.num_feature)


def library_key(model_bytes: bytes, tl2cgen_version: str, params: dict[str, Any]) -> str:
    """The cache key: everything that makes the library what it is."""
    digest = hashlib.sha256()
    for part in (tl2cgen_version, json.dumps([CFLAGS, params], sort_keys=True), _ENTRY_POINTS):
        digest.update(part.encode() + b"\0")
    digest.update(model_bytes)
    return digest.hexdigest()


def find_compiler() -> list[str]:
    """The C compiler's command: ``$CC`` if set, else cc, gcc or clang from PATH."""
    configured = os.environ.get("CC", "").strip()
    if configured:
        words = shlex.split(configured)
        if shutil.which(words[0]) is None:
            raise NativeUnavailable(f"the C compiler CC={configured!r} is not found")
        return words
    for name in ("cc", "gcc", "clang"):
        if shutil.which(name):
            return [name]
    raise NativeUnavailable("no C compiler on PATH (cc, gcc or clang)")


def build_library(model_bytes: bytes, params: dict[str, Any], num_feature: int, target: Path) -> None:
    """Generate C with tl2cgen (in a child process), compile it with our entry points into ``target``."""
    compiler = find_compiler()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as where:
        build = Path(where)
        (build / "model.tl").write_bytes(model_bytes)
        _run([sys.executable, "-I", "-c", _CODEGEN, json.dumps(params)], build, CODEGEN_TIMEOUT_S, "tl2cgen")
        signature = _PREDICT_SIGNATURE.search((build / "header.h").read_text(encoding="utf-8"))
        if signature is None:
            raise CompileFailed("tl2cgen's header.h has no predict() of the expected form")
        (build / "modelserve.c").write_text(_ENTRY_POINTS, encoding="utf-8")
        recipe = json.loads((build / "recipe.json").read_text(encoding="utf-8"))
        sources = [f"{source['name']}.c" for source in recipe["sources"]] + ["modelserve.c"]
        defines = [f"-DMODELSERVE_LEAF={signature.group(1)}", f"-DMODELSERVE_NUM_FEATURE={num_feature}"]
        compile_objects = [[*compiler, "-c", *CFLAGS, *defines, source, "-o", f"{source}.o"] for source in sources]
        _run_all(compile_objects, build)
        link = [*compiler, "-shared", *CFLAGS, *(f"{source}.o" for source in sources), "-o", str(target), "-lm"]
        _run(link, build, COMPILE_TIMEOUT_S, "the linker")


def _run(command: list[str], where: Path, timeout: float, what: str) -> None:
    try:
        done = subprocess.run(command, cwd=where, capture_output=True, timeout=timeout, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise CompileFailed(f"{what} took longer than {timeout:.0f} s") from None
    except FileNotFoundError as exc:
        raise NativeUnavailable(f"{what} cannot run ({exc})") from exc
    if done.returncode != 0:
        output = (done.stderr or done.stdout).decode(errors="replace").strip().splitlines()[-3:]
        raise CompileFailed(f"{what} exited with {done.returncode}: {' | '.join(output)}")


def _run_all(commands: list[list[str]], where: Path) -> None:
    """Compile the translation units side by side, one process per core at most."""
    if len(commands) == 1:
        _run(commands[0], where, COMPILE_TIMEOUT_S, "the C compiler")
        return
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=min(len(commands), os.cpu_count() or 1)) as pool:
        for future in [pool.submit(_run, c, where, COMPILE_TIMEOUT_S, "the C compiler") for c in commands]:
            future.result()


class _Library:
    """One loaded library: its entry points, views on its static buffers, and the lock guarding them."""

    def __init__(self, path: Path):
        lib = ctypes.CDLL(str(path))
        self.num_feature: int = lib.modelserve_num_feature()
        self.num_output: int = lib.modelserve_num_output()
        self.dtype = {4: np.float32, 8: np.float64}[lib.modelserve_leaf_bytes()]
        leaf = ctypes.c_float if self.dtype is np.float32 else ctypes.c_double
        self.row = np.ctypeslib.as_array((ctypes.c_double * self.num_feature).in_dll(lib, "modelserve_row"))
        self.row = self.row.reshape(1, self.num_feature)
        self.out = np.ctypeslib.as_array((leaf * self.num_output).in_dll(lib, "modelserve_out"))
        self.out = self.out.reshape(1, self.num_output)
        self.predict_one = lib.modelserve_predict_one
        self.predict_one.argtypes, self.predict_one.restype = [], None
        self.predict_rows = lib.modelserve_predict_rows
        self.predict_rows.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_void_p]
        self.predict_rows.restype = ctypes.c_int32
        self.lock = threading.Lock()
        self._lib = lib  # keeps the library mapped (ctypes never unloads it anyway)


#: One _Library per path: the dynamic loader maps a path once per process, so its buffers are shared.
_LIBRARIES: dict[str, _Library] = {}
_LIBRARIES_LOCK = threading.Lock()


def load_library(path: Path) -> _Library:
    """The library at ``path`` (already verified by the cache), loaded once per process."""
    with _LIBRARIES_LOCK:
        found = _LIBRARIES.get(str(path))
        if found is None:
            found = _LIBRARIES[str(path)] = _Library(path)
        return found


class NativePredictor:
    """Outputs of shape (rows, classes) for classifiers, (rows,) for single-output models, as GTIL gives."""

    kernel = "treelite-native"

    def __init__(self, library: _Library, num_feature: int):
        if library.num_feature != num_feature:
            raise NativeUnavailable(f"the library expects {library.num_feature} features, the model {num_feature}")
        self._lib = library
        self._single = library.num_output == 1

    def predict(self, X: np.ndarray) -> np.ndarray:
        lib = self._lib
        if X.shape[0] == 1 and lib.lock.acquire(blocking=False):
            try:
                lib.row[...] = X  # numpy refuses a row of another width
                lib.predict_one()
                out = lib.out.copy()
            finally:
                lib.lock.release()
        else:
            X = np.ascontiguousarray(X, dtype=np.float64)
            if X.ndim != 2 or X.shape[1] != lib.num_feature:
                raise ValueError(f"expected rows of {lib.num_feature} features, got shape {X.shape}")
            out = np.empty((X.shape[0], lib.num_output), dtype=lib.dtype)
            lib.predict_rows(X.ctypes.data, X.shape[0], X.shape[1], out.ctypes.data)
        return out[:, 0] if self._single else out

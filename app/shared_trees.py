"""Tree ensembles every worker of a machine serves from one copy: a file they all map read-only.

Each gunicorn worker loads its models after fork, so a model unpickled in every
worker costs its size once per worker. scikit-learn keeps a tree's nodes in
memory its ``Tree`` object allocates itself (unpickling copies them, so joblib's
``mmap_mode`` cannot help), and nothing lets two processes share that memory.

So an adapter that knows a forest's nodes writes them once per model content
(keyed by the file's sha256) into a flat file in the server's own directory,
``<registry.state_directory>/shared-models``: the node arrays of all trees end to
end, and each leaf's values. Every worker maps that file read-only: the pages
live once in the page cache and every mapping points at them, so the model costs
its size once per machine, and unmapping it (a swap, an eviction, idle unload)
takes it out of the worker. A worker that finds the file does not unpickle the
model at all.

Predictions walk the mapped nodes in a few lines of C (:data:`KERNEL_SOURCE`),
compiled once per machine into the compiled-trees cache's kind of directory and
loaded only when its sha256 matches (:mod:`app.native_trees_cache`). The kernel
repeats scikit-learn's arithmetic exactly: features rounded to float32,
``x <= threshold`` in double, leaf values added tree after tree, then divided by
the tree count; an adapter still checks its answers against the estimator's own
(kept in the file) before serving. Without a C compiler (the production image has
none) NumPy walks the same layout with the same arithmetic: still shared, slower
on big batches.

A layout is checked before it is served: every child index points forward inside
its own tree, so a damaged file can neither read outside the mapping nor loop.
"""

from __future__ import annotations

import contextlib
import ctypes
import hashlib
import json
import logging
import mmap
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from app.file_locks import exclusive
from app.native_trees_cache import LibraryCache, NativeUnavailable

#: Bumped whenever the file layout or the kernel's arithmetic changes: old files are then ignored.
FORMAT = 1
SUFFIX = ".forest"
ALIGN = 64
#: How long a worker waits for another one writing the same layout (a big forest takes seconds).
LOCK_WAIT_S = 120.0
CFLAGS = ("-O2", "-std=c99", "-fPIC", "-fvisibility=hidden")
log = logging.getLogger("app.shared_trees")

#: The arrays of a layout, in file order, with their element types.
ARRAYS = {
    "roots": np.int64,  # each tree's first node
    "ends": np.int64,  # one past each tree's last node
    "left": np.int32,  # child for x <= threshold; -1 on a leaf
    "right": np.int32,
    "feature": np.int32,
    "threshold": np.float64,
    "missing_left": np.uint8,  # where a NaN goes
    "value": np.float64,  # (nodes, outputs): a leaf's class fractions or regression value
    "probe_rows": np.float64,  # rows the estimator answered when the layout was written ...
    "probe_outputs": np.float64,  # ... and its answers, which the kernel must repeat exactly
}

KERNEL_SOURCE = r"""
#include <math.h>
#include <stdint.h>
#define EXPORT __attribute__((visibility("default")))

EXPORT int32_t modelserve_forest_predict(
    const double* X, int64_t rows, int64_t cols, int64_t trees, const int64_t* roots,
    const int32_t* left, const int32_t* right, const int32_t* feature, const double* threshold,
    const uint8_t* missing_left, const double* value, int64_t outputs, double* out) {
  for (int64_t i = 0; i < rows; ++i) {
    const double* x = X + i * cols;
    double* o = out + i * outputs;
    for (int64_t k = 0; k < outputs; ++k) o[k] = 0.0;
    for (int64_t t = 0; t < trees; ++t) {
      int64_t node = roots[t];
      while (left[node] >= 0) {
        float v = (float)x[feature[node]];
        if (isnan(v)) {
          node = missing_left[node] ? left[node] : right[node];
        } else {
          node = ((double)v <= threshold[node]) ? left[node] : right[node];
        }
      }
      const double* leaf = value + node * outputs;
      for (int64_t k = 0; k < outputs; ++k) o[k] += leaf[k];
    }
    if (trees > 1) {
      for (int64_t k = 0; k < outputs; ++k) o[k] /= (double)trees;
    }
  }
  return 0;
}
"""


class SharingUnavailable(Exception):
    """Why a model cannot be served from a shared layout; the message names the reason."""


def layout_key(model_sha256: str, producer: str) -> str:
    """The layout's name: the model file's content, what wrote the layout (library and version), our format."""
    return hashlib.sha256(f"{FORMAT}\0{producer}\0{model_sha256}".encode()).hexdigest()


class LayoutStore:
    """A directory of ``<key>.forest`` layouts with their ``<key>.forest.json`` descriptions (0700, ours)."""

    def __init__(self, directory: Path):
        self.directory = directory.resolve()
        try:
            self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            if self.directory.stat().st_uid != os.geteuid():
                raise SharingUnavailable(f"{self.directory} belongs to another user")
            os.chmod(self.directory, 0o700)
        except OSError as exc:
            raise SharingUnavailable(f"{self.directory} is not usable ({exc})") from exc

    def paths(self, key: str) -> tuple[Path, Path]:
        return self.directory / f"{key}{SUFFIX}", self.directory / f"{key}{SUFFIX}.json"

    def find(self, key: str) -> MappedForest | None:
        """The layout for ``key`` mapped and checked, or None when there is none yet."""
        data, description = self.paths(key)
        try:
            meta = json.loads(description.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as exc:
            raise SharingUnavailable(f"{description.name} is not readable ({exc})") from exc
        return MappedForest(data, meta, compiled_kernel(self.directory / "kernels"))

    @contextlib.contextmanager
    def writing(self, key: str) -> Iterator[None]:
        """Hold the per-key lock while one worker writes a layout (the others then find it)."""

        def timed_out() -> SharingUnavailable:
            return SharingUnavailable(f"another worker has been writing this layout for {LOCK_WAIT_S:.0f} s")

        with exclusive(self.directory / f"{key}.lock", LOCK_WAIT_S, timed_out):
            yield

    def discard(self, key: str) -> None:
        """Remove a layout (damaged) and what a writer killed halfway left; call it holding :meth:`writing`.

        Workers mapping the old file keep their mapping: unlinking never pulls pages from under them.
        """
        for path in (*self.paths(key), *self.directory.glob(f".{key[:16]}-*")):
            path.unlink(missing_ok=True)

    def write(self, key: str, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        """Write the arrays end to end, then their description: a layout without one does not exist yet."""
        data, description = self.paths(key)
        if len(arrays["left"]) >= 2**31:
            raise SharingUnavailable("the forest has more nodes than the layout's 32-bit indices reach")
        placed: dict[str, list[Any]] = {}
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key[:16]}-")
        try:
            with os.fdopen(handle, "wb") as out:
                for name, dtype in ARRAYS.items():
                    array = np.ascontiguousarray(arrays[name], dtype=dtype)
                    out.write(b"\0" * (-out.tell() % ALIGN))
                    placed[name] = [out.tell(), list(array.shape)]
                    out.write(array.tobytes())
                size = out.tell()
            os.chmod(temporary, 0o400)
            os.replace(temporary, data)
        finally:
            Path(temporary).unlink(missing_ok=True)
        document = {"format": FORMAT, "key": key, "bytes": size, "arrays": placed, "meta": dict(meta)}
        handle, temporary = tempfile.mkstemp(dir=self.directory, prefix=f".{key[:16]}-", suffix=".json")
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as out:
                json.dump(document, out)
            os.replace(temporary, description)
        finally:
            Path(temporary).unlink(missing_ok=True)


class MappedForest:
    """A layout mapped read-only, checked, with the compiled kernel bound to it.

    ``predict`` returns (rows, outputs) float64: class fractions averaged over
    the trees (classifiers), or a (rows,) mean for a single-output regressor.
    ``library`` is the compiled kernel's entry point, or None: NumPy walks the
    nodes instead, with the same arithmetic (slower on big batches).
    """

    def __init__(self, path: Path, description: Mapping[str, Any], library: Any):
        self.path = path
        self.meta: dict[str, Any] = dict(description.get("meta", {}))
        if description.get("format") != FORMAT:
            raise SharingUnavailable(f"{path.name} has layout format {description.get('format')}, not {FORMAT}")
        with open(path, "rb") as handle:
            if os.fstat(handle.fileno()).st_size != description["bytes"]:
                raise SharingUnavailable(f"{path.name} is not the size its description says")
            self._map = mmap.mmap(handle.fileno(), 0, prot=mmap.PROT_READ)
        self.size_bytes = len(self._map)
        self.arrays = {name: self._view(name, dtype, description["arrays"][name]) for name, dtype in ARRAYS.items()}
        self._check()
        a = self.arrays
        self.n_features = int(self.meta["n_features"])
        self.outputs = int(a["value"].shape[1])
        self._single = bool(self.meta.get("single_output"))
        self._library = library
        self.kernel = "shared-forest" if library is not None else "shared-forest-numpy"
        self._fixed = (
            len(a["roots"]),
            *(a[name].ctypes.data for name in ("roots", "left", "right", "feature", "threshold", "missing_left")),
            a["value"].ctypes.data,
            self.outputs,
        )

    def _view(self, name: str, dtype: Any, placed: list[Any]) -> np.ndarray:
        offset, shape = int(placed[0]), tuple(int(n) for n in placed[1])
        count = int(np.prod(shape)) if shape else 1
        if offset % ALIGN or offset + count * np.dtype(dtype).itemsize > len(self._map):
            raise SharingUnavailable(f"{self.path.name}: array {name} lies outside the file")
        return np.frombuffer(self._map, dtype=dtype, count=count, offset=offset).reshape(shape)

    def _check(self) -> None:
        """Every child inside its tree and after its parent; features and leaves in range."""
        a = self.arrays
        nodes = len(a["left"])
        roots, ends = a["roots"], a["ends"]
        if not (len(roots) == len(ends) > 0 and all(len(a[n]) == nodes for n in ("right", "feature", "threshold"))):
            raise SharingUnavailable(f"{self.path.name}: arrays of different lengths")
        if len(a["missing_left"]) != nodes or a["value"].ndim != 2 or len(a["value"]) != nodes:
            raise SharingUnavailable(f"{self.path.name}: arrays of different lengths")
        if roots[0] != 0 or ends[-1] != nodes or np.any(roots >= ends) or np.any(roots[1:] != ends[:-1]):
            raise SharingUnavailable(f"{self.path.name}: trees do not tile the node arrays")
        index = np.arange(nodes)
        tree_end = np.repeat(ends, ends - roots)
        inner = a["left"] >= 0
        for child in (a["left"], a["right"]):
            if np.any(inner & ((child <= index) | (child >= tree_end))):
                raise SharingUnavailable(f"{self.path.name}: a child outside its tree")
        features = a["feature"][inner]
        if features.size and (features.min() < 0 or features.max() >= int(self.meta["n_features"])):
            raise SharingUnavailable(f"{self.path.name}: a feature index out of range")

    def predict(self, X: np.ndarray) -> np.ndarray:
        X = np.ascontiguousarray(X, dtype=np.float64)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected rows of {self.n_features} features, got shape {X.shape}")
        if self._library is None:
            out = _walk(self.arrays, X)
        else:
            out = np.empty((X.shape[0], self.outputs), dtype=np.float64)
            self._library(X.ctypes.data, X.shape[0], X.shape[1], *self._fixed, out.ctypes.data)
        return out[:, 0] if self._single else out

    def agrees_with_estimator(self) -> bool:
        """Whether the kernel repeats, bit for bit, the answers the estimator gave when the layout was written."""
        rows, expected = self.arrays["probe_rows"], self.arrays["probe_outputs"]
        got = self.predict(rows)
        return bool(np.array_equal(got.reshape(expected.shape), expected))


def _walk(a: Mapping[str, np.ndarray], X: np.ndarray) -> np.ndarray:
    """:data:`KERNEL_SOURCE`'s arithmetic in NumPy: every (row, tree) pair steps down a level per pass."""
    X32 = X.astype(np.float32)
    rows, trees = X.shape[0], len(a["roots"])
    left, right, feature, threshold, missing = (a[n] for n in ("left", "right", "feature", "threshold", "missing_left"))
    node = np.repeat(a["roots"][None, :], rows, axis=0)
    row = np.repeat(np.arange(rows)[:, None], trees, axis=1)
    inner = left[node] >= 0
    while inner.any():
        at = node[inner]
        x = X32[row[inner], feature[at]].astype(np.float64)
        go_left = np.where(np.isnan(x), missing[at] != 0, x <= threshold[at])
        node[inner] = np.where(go_left, left[at], right[at])
        inner = left[node] >= 0
    leaves = a["value"][node]  # (rows, trees, outputs)
    out = np.zeros((rows, leaves.shape[2]), dtype=np.float64)
    for tree in range(trees):  # tree after tree, as the C kernel and scikit-learn add them
        out += leaves[:, tree, :]
    if trees > 1:
        out /= trees
    return out


_KERNELS: dict[str, Any] = {}


def compiled_kernel(directory: Path) -> Any:
    """The compiled kernel's entry point (built once per machine, loaded once per process); None without it."""
    key = hashlib.sha256(json.dumps([FORMAT, CFLAGS, KERNEL_SOURCE]).encode()).hexdigest()
    if key in _KERNELS:
        return _KERNELS[key]
    try:
        path = LibraryCache(directory).library(key, _build_kernel)
    except NativeUnavailable as exc:
        log.warning("shared forests: no compiled kernel (%s): NumPy walks the shared layouts", exc)
        _KERNELS[key] = None
        return None
    function = ctypes.CDLL(str(path)).modelserve_forest_predict
    function.argtypes = [ctypes.c_void_p, ctypes.c_int64, ctypes.c_int64, ctypes.c_int64] + [ctypes.c_void_p] * 7
    function.argtypes += [ctypes.c_int64, ctypes.c_void_p]
    function.restype = ctypes.c_int32
    _KERNELS[key] = function
    return function


def _build_kernel(target: Path) -> None:
    from app.native_trees import _run, find_compiler

    compiler = find_compiler()
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".build-") as where:
        (Path(where) / "forest.c").write_text(KERNEL_SOURCE, encoding="utf-8")
        _run([*compiler, "-shared", *CFLAGS, "forest.c", "-o", str(target), "-lm"], Path(where), 30, "the C compiler")


def release_freed_memory() -> None:
    """Hand memory freed by the C allocator back to the system (glibc keeps it otherwise); elsewhere a no-op."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass

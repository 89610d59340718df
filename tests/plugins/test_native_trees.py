"""Tree ensembles compiled to a native library: the plain model's answers, built once, and never a
library this code did not write. Every step down (GTIL, then the plain model) is logged with its reason.

The models are tiny (a few trees) so that each compile takes a fraction of a second.
"""

from __future__ import annotations

import json
import os
import stat
import threading
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.factories import iris
from tests.plugins.test_fast_kernels import adapter, rows, save


def sklearn_trees() -> list[Any]:
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier, RandomForestRegressor
    from sklearn.tree import DecisionTreeClassifier

    return [
        pytest.param(RandomForestClassifier(n_estimators=5, max_depth=4, random_state=0), id="forest"),
        pytest.param(ExtraTreesClassifier(n_estimators=5, max_depth=4, random_state=0), id="extra-trees"),
        pytest.param(DecisionTreeClassifier(max_depth=4, random_state=0), id="tree"),
        pytest.param(RandomForestRegressor(n_estimators=5, max_depth=4, random_state=0), id="forest-regressor"),
    ]


def fit(estimator: Any) -> Any:
    X, y = iris()
    if getattr(estimator, "_estimator_type", None) == "regressor":
        return estimator.fit(X[:, :3], X[:, 3])
    return estimator.fit(X, y)


def with_missing(X: np.ndarray) -> np.ndarray:
    """``X`` with NaN in a few places of every column (and one row all NaN)."""
    X = X.copy()
    for j in range(X.shape[1]):
        X[j :: 3 + j, j] = np.nan
    X[0] = np.nan
    return X


def tiny_forest() -> Any:
    from sklearn.ensemble import RandomForestClassifier

    return RandomForestClassifier(n_estimators=3, max_depth=3, random_state=1).fit(*iris())


@pytest.fixture
def builds(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """The libraries compiled during the test (the real compile, counted)."""
    from app import native_trees

    done: list[Path] = []
    real = native_trees.build_library

    def counted(*args: Any) -> None:
        done.append(args[-1])
        real(*args)

    monkeypatch.setattr(native_trees, "build_library", counted)
    return done


def load_forest(tmp_path: Path, cache: Path, estimator: Any = None) -> Any:
    path = save(estimator if estimator is not None else tiny_forest(), tmp_path, "rf")
    return adapter("sklearn", cache=cache).load(path, {"compiled_trees": True})


@pytest.mark.parametrize("estimator", sklearn_trees())
def test_native_library_gives_sklearns_answers(tmp_path, trees_cache, estimator):
    estimator = fit(estimator)
    model = adapter("sklearn", cache=trees_cache).load(save(estimator, tmp_path, "m"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == "treelite-native"
    probe = rows()[:, : estimator.n_features_in_]
    np.testing.assert_array_equal(model.predict(probe[:1]), estimator.predict(probe[:1]))  # the one-row path
    if hasattr(estimator, "classes_"):
        np.testing.assert_array_equal(model.predict(probe), estimator.predict(probe))
        np.testing.assert_allclose(model.predict_proba(probe), estimator.predict_proba(probe), rtol=0, atol=1e-6)
        for row in probe[:20]:
            one = model.predict_proba(row[None, :])
            np.testing.assert_allclose(one, estimator.predict_proba(row[None, :]), rtol=0, atol=1e-6)
    else:
        np.testing.assert_allclose(model.predict(probe), estimator.predict(probe), rtol=0, atol=1e-6)


def test_missing_values_go_where_sklearn_sends_them(tmp_path, trees_cache):
    estimator = fit(sklearn_trees()[0].values[0])
    model = adapter("sklearn", cache=trees_cache).load(save(estimator, tmp_path, "m"), {"compiled_trees": True})
    assert model.describe().extra["kernel"] == "treelite-native"
    X = with_missing(rows())
    np.testing.assert_allclose(model.predict_proba(X), estimator.predict_proba(X), rtol=0, atol=1e-6)
    np.testing.assert_allclose(model.predict_proba(X[:1]), estimator.predict_proba(X[:1]), rtol=0, atol=1e-6)


@pytest.mark.parametrize("objective", ["multi:softprob", "binary:logistic", "reg:squarederror"])
def test_missing_values_go_where_xgboost_sends_them(tmp_path, trees_cache, objective):
    from tests.plugins.test_fast_kernels import train_xgb

    estimator = train_xgb(objective)
    path = tmp_path / "m.json"
    estimator.save_model(path)
    model = adapter("xgboost", True, trees_cache).load(path, {})
    assert model.describe().extra["kernel"] == "treelite-native"
    X = with_missing(rows()[:, : estimator.n_features_in_])
    expected = estimator.get_booster().inplace_predict(X)
    np.testing.assert_allclose(model._raw(X).reshape(expected.shape), expected, rtol=0, atol=1e-6)


def test_a_row_of_the_wrong_width_is_refused(tmp_path, trees_cache):
    from app.compiled_trees import compile_trees

    native = compile_trees(tiny_forest(), "sklearn", 1, trees_cache)[0]
    assert native.kernel == "treelite-native"
    for X in (np.zeros((1, 3)), np.zeros((2, 5))):
        with pytest.raises(ValueError):
            native.predict(X)


def test_single_rows_from_several_threads_get_their_own_answers(trees_cache):
    """One row uses the library's static buffers under a lock; a thread that finds it taken uses its own."""
    from concurrent.futures import ThreadPoolExecutor

    from app.compiled_trees import compile_trees

    estimator = tiny_forest()
    native = compile_trees(estimator, "sklearn", 1, trees_cache)[0]
    probe = rows()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: native.predict(probe[i : i + 1]), range(len(probe))))
    np.testing.assert_allclose(np.vstack(answers), estimator.predict_proba(probe), rtol=0, atol=1e-6)


def test_the_library_starts_no_threads(trees_cache):
    """No OpenMP and no pthreads in what tl2cgen generates or in our entry points, whatever compute_threads says."""
    from app.compiled_trees import compile_trees

    compile_trees(tiny_forest(), "sklearn", 4, trees_cache)
    for library in trees_cache.glob("*.so"):
        code = library.read_bytes()
        assert b"GOMP_" not in code and b"omp_" not in code and b"pthread_create" not in code, library


# --- the cache -----------------------------------------------------------------


def cached(cache: Path) -> tuple[Path, dict[str, Any]]:
    (library,) = cache.glob("*.so")
    return library, json.loads(library.with_suffix(".json").read_text())


def test_the_library_is_compiled_once_and_reused(tmp_path, builds):
    cache = tmp_path / "cache"
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-native"
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-native"  # a restart, a worker
    assert len(builds) == 1
    library, sidecar = cached(cache)
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700
    assert not library.stat().st_mode & 0o022
    assert len(sidecar["sha256"]) == 64 and library.stem == sidecar["key"]


def test_a_cached_library_serves_without_a_compiler(tmp_path, monkeypatch, builds):
    cache = tmp_path / "cache"
    load_forest(tmp_path, cache)
    monkeypatch.setenv("CC", "/nonexistent/cc")
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-native"
    assert len(builds) == 1


def test_a_tampered_library_is_not_loaded_but_compiled_again(tmp_path, builds, caplog):
    cache = tmp_path / "cache"
    load_forest(tmp_path, cache)
    library, sidecar = cached(cache)
    # A new file in its place: this process still runs the first library, and rewriting a loaded
    # library in place (truncating it) would pull its relocated pages from under it (SIGSEGV).
    tampered = library.with_name("tampered.so")
    tampered.write_bytes(library.read_bytes() + b"\0")
    os.replace(tampered, library)
    estimator = tiny_forest()
    model = load_forest(tmp_path, cache, estimator)
    assert "does not match the sha256" in caplog.text
    assert len(builds) == 2
    assert model.describe().extra["kernel"] == "treelite-native"
    np.testing.assert_allclose(model.predict_proba(rows()), estimator.predict_proba(rows()), rtol=0, atol=1e-6)
    assert cached(cache)[1]["sha256"] == sidecar["sha256"]  # the same build again, not the tampered file


def test_a_library_without_its_sidecar_is_not_loaded(tmp_path, builds):
    cache = tmp_path / "cache"
    load_forest(tmp_path, cache)
    library, _ = cached(cache)
    library.with_suffix(".json").unlink()
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-native"
    assert len(builds) == 2


def test_a_cache_directory_open_to_others_is_closed(tmp_path):
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o777)
    os.chmod(cache, 0o777)
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-native"
    assert stat.S_IMODE(cache.stat().st_mode) == 0o700


def test_concurrent_loads_compile_once_and_both_serve(tmp_path, builds):
    from app.compiled_trees import compile_trees

    estimator = tiny_forest()
    cache = tmp_path / "cache"
    start = threading.Barrier(2)
    found: list[Any] = []

    def load() -> None:
        start.wait()
        found.append(compile_trees(estimator, "sklearn", 1, cache)[0])

    threads = [threading.Thread(target=load) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [p.kernel for p in found] == ["treelite-native"] * 2
    assert len(builds) == 1  # the other waited on the lock, then found the library
    for predictor in found:
        np.testing.assert_allclose(predictor.predict(rows()), estimator.predict_proba(rows()), rtol=0, atol=1e-6)
    assert not [p for p in cache.iterdir() if p.name.startswith(".")], "temporary files left behind"


# --- GTIL serves when there is no native library -------------------------------


def test_no_compiler_means_gtil(tmp_path, monkeypatch, caplog):
    monkeypatch.setenv("CC", "/nonexistent/cc")
    estimator = tiny_forest()
    model = load_forest(tmp_path, tmp_path / "cache", estimator)
    assert model.describe().extra["kernel"] == "treelite-gtil"
    assert "CC='/nonexistent/cc' is not found" in caplog.text
    np.testing.assert_allclose(model.predict_proba(rows()), estimator.predict_proba(rows()), rtol=0, atol=1e-6)
    assert not list((tmp_path / "cache").glob("*.failed")), "a missing compiler is not the model's failure"


def test_no_tl2cgen_means_gtil(tmp_path, monkeypatch, caplog):
    real = metadata.version

    def version(name: str) -> str:
        if name == "tl2cgen":
            raise metadata.PackageNotFoundError(name)
        return real(name)

    monkeypatch.setattr(metadata, "version", version)
    assert load_forest(tmp_path, tmp_path / "cache").describe().extra["kernel"] == "treelite-gtil"
    assert "tl2cgen is not installed" in caplog.text


def test_a_failed_compile_means_gtil_and_is_not_repeated(tmp_path, monkeypatch, caplog, builds):
    monkeypatch.setenv("CC", "false")  # a "compiler" that always fails
    cache = tmp_path / "cache"
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-gtil"
    assert "exited with 1" in caplog.text
    assert len(list(cache.glob("*.failed"))) == 1
    caplog.clear()
    assert load_forest(tmp_path, cache).describe().extra["kernel"] == "treelite-gtil"
    assert "an earlier compile of this model failed" in caplog.text
    assert len(builds) == 1

"""The tabular kernel: fitted Pipelines of a ColumnTransformer and a linear model, computed with NumPy.

It is recognised only for its closed set of steps, answers exactly as
scikit-learn does on the model's DataFrame (probabilities within 1e-9), and is
refused, with the reason in ``/info``, when a step is outside that set or when it
disagrees with scikit-learn on the trial rows; scikit-learn then serves as before.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from app.adapters import AdapterSettings, Table
from app.plugin_manager import BUILTIN_PLUGIN_DIR, build_plugin_manager, import_beside
from tests.factories import PENGUIN_NUMBERS, PENGUIN_STRINGS, penguins, penguins_model, write_penguins_pipeline
from tests.helpers import assert_error


def load(path: Path, tabular_kernel: bool = True) -> Any:
    adapter = build_plugin_manager(None, AdapterSettings(tabular_kernel=tabular_kernel)).adapters["sklearn"]
    sidecar = path.with_name(f"{path.stem}.meta.json")
    metadata = json.loads(sidecar.read_text()) if sidecar.exists() else {}
    return adapter.load(path, metadata)


def as_table(X: Any) -> Table:
    """A DataFrame's columns as the core's request parser gives them (float64; object with NaN for null)."""
    return Table({name: X[name].to_numpy() for name in X.columns}, len(X))


def tabular_module() -> Any:
    return import_beside(str(BUILTIN_PLUGIN_DIR / "sklearn_adapter.py"), "_sklearn_tabular")


def fit_and_save(directory: Path, name: str, columns: Any, final: Any, y: Any = None) -> tuple[Path, Any]:
    import joblib
    from sklearn.pipeline import Pipeline

    X, species = penguins()
    if y == "mass":
        y = X["body_mass_g"].fillna(4000.0)
    elif isinstance(y, str):  # complete rows only (a passthrough column keeps its NaN), Adelie or not
        X, y = X.dropna(), (species == "Adelie")[X.notna().all(axis=1)].to_numpy()
    target = species if y is None else y
    pipeline = Pipeline([("columns", columns), ("model", final)]).fit(X, target)
    path = directory / f"{name}.joblib"
    joblib.dump(pipeline, path)
    return path, pipeline


def pipelines() -> list[Any]:
    """(name, ColumnTransformer, final model, target) over the penguins columns, each in the closed set."""
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LinearRegression, LogisticRegression, Ridge, RidgeClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.svm import LinearSVC

    numbers = make_pipeline(SimpleImputer(strategy="median"), StandardScaler())
    filled = make_pipeline(SimpleImputer(strategy="constant", fill_value="unknown"), OneHotEncoder(drop="first"))
    return [
        pytest.param(
            ColumnTransformer(
                [("s", OneHotEncoder(handle_unknown="ignore", drop="if_binary"), ["sex", "island"])],
                remainder="passthrough",
            ),
            LogisticRegression(max_iter=5000),
            "binary",
            id="binary-logistic-passthrough-remainder",
        ),
        pytest.param(
            ColumnTransformer([("s", filled, PENGUIN_STRINGS), ("n", numbers, PENGUIN_NUMBERS)]),
            LogisticRegression(max_iter=2000),
            None,
            id="imputed-strings-dropped-first",
        ),
        pytest.param(
            ColumnTransformer(
                [("s", OneHotEncoder(handle_unknown="ignore"), ["island"]), ("n", numbers, PENGUIN_NUMBERS[:3])]
            ),
            Ridge(alpha=0.5),
            "mass",
            id="ridge-regression",
        ),
        pytest.param(
            ColumnTransformer([("s", OneHotEncoder(), PENGUIN_STRINGS), ("n", numbers, PENGUIN_NUMBERS)]),
            LinearRegression(),
            "mass",
            id="linear-regression",
        ),
        pytest.param(
            ColumnTransformer([("s", OneHotEncoder(), PENGUIN_STRINGS), ("n", numbers, PENGUIN_NUMBERS)]),
            RidgeClassifier(),
            None,
            id="ridge-classifier",
        ),
        pytest.param(
            ColumnTransformer([("n", numbers, PENGUIN_NUMBERS), ("s", OneHotEncoder(), ["island"])], remainder="drop"),
            LinearSVC(),
            None,
            id="linear-svc-island-only",
        ),
    ]


def test_the_penguins_pipeline_is_served_from_tables_exactly(tmp_path):
    model = load(write_penguins_pipeline(tmp_path))
    description = model.describe()
    assert description.takes_table and description.extra["tabular_kernel"] == {"serves": True, "reason": None}
    assert model.kernel == "tabular+logistic-internals"
    X = penguins()[0]
    reference = penguins_model("pipeline")
    labels, proba = model.predict_with_proba(as_table(X))
    assert list(labels) == list(reference.predict(X))
    assert np.array_equal(proba, reference.predict_proba(X))  # every NaN row included, to the last bit
    for i in range(0, len(X), 7):  # one row alone: the arithmetic scikit-learn does for one row
        assert np.array_equal(model.predict_proba(as_table(X.iloc[[i]])), reference.predict_proba(X.iloc[[i]]))


@pytest.mark.parametrize(("columns", "final", "target"), pipelines())
def test_other_pipelines_of_the_closed_set_answer_as_scikit_learn(tmp_path, columns, final, target):
    path, pipeline = fit_and_save(tmp_path, "other", columns, final, target)
    model = load(path)
    assert model.describe().extra["tabular_kernel"] == {"serves": True, "reason": None}
    X = penguins()[0].dropna()
    assert np.array_equal(model.predict(as_table(X)), pipeline.predict(X))
    if hasattr(pipeline, "predict_proba"):
        assert np.allclose(model.predict_proba(as_table(X)), pipeline.predict_proba(X), rtol=0, atol=1e-9)


def test_an_unknown_category_is_refused_as_scikit_learn_refuses_it(tmp_path):
    model = load(write_penguins_pipeline(tmp_path))
    X = penguins()[0].iloc[:3].copy()
    X["island"] = ["Biscoe", "Atlantis", "Dream"]
    with pytest.raises(ValueError, match="unknown categories"):
        model.predict(as_table(X))


def unsupported() -> list[Any]:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import MinMaxScaler, OneHotEncoder, StandardScaler

    scaled = make_pipeline(SimpleImputer(), StandardScaler())
    return [
        pytest.param(
            ColumnTransformer(
                [
                    ("s", OneHotEncoder(), PENGUIN_STRINGS),
                    ("n", make_pipeline(SimpleImputer(), MinMaxScaler()), PENGUIN_NUMBERS),
                ]
            ),
            LogisticRegression(max_iter=2000),
            "MinMaxScaler",
            id="a-min-max-scaler",
        ),
        pytest.param(
            ColumnTransformer([("s", OneHotEncoder(min_frequency=5), PENGUIN_STRINGS), ("n", scaled, PENGUIN_NUMBERS)]),
            LogisticRegression(max_iter=2000),
            "infrequent",
            id="infrequent-categories",
        ),
        pytest.param(
            ColumnTransformer([("s", OneHotEncoder(), PENGUIN_STRINGS), ("n", scaled, PENGUIN_NUMBERS)]),
            RandomForestClassifier(n_estimators=3, random_state=0),
            "RandomForestClassifier",
            id="a-forest-at-the-end",
        ),
    ]


@pytest.mark.parametrize(("columns", "final", "named"), unsupported())
def test_an_unsupported_step_falls_back_to_scikit_learn(tmp_path, columns, final, named):
    path, pipeline = fit_and_save(tmp_path, "unsupported", columns, final)
    model = load(path)
    status = model.describe().extra["tabular_kernel"]
    assert not status["serves"] and named in status["reason"]
    assert not model.describe().takes_table
    X = penguins()[0]
    assert np.array_equal(model.predict(X), pipeline.predict(X))


def test_a_kernel_that_disagrees_is_refused(tmp_path, monkeypatch, caplog):
    tabular = tabular_module()
    scale = tabular._Scaler.apply
    monkeypatch.setattr(tabular._Scaler, "apply", lambda self, block: scale(self, block) * 1.001)
    model = load(write_penguins_pipeline(tmp_path))
    status = model.describe().extra["tabular_kernel"]
    assert not status["serves"] and "disagrees with scikit-learn" in status["reason"]
    assert model.kernel != "tabular+logistic-internals" and not model.describe().takes_table
    assert "tabular kernel disagrees" in caplog.text
    X = penguins()[0]
    assert np.array_equal(model.predict_proba(X), penguins_model("pipeline").predict_proba(X))


def test_a_kernel_that_answers_where_scikit_learn_refuses_is_refused(tmp_path, monkeypatch):
    tabular = tabular_module()
    monkeypatch.setattr(tabular._OneHot, "_null_or_unknown", lambda self, j, value: tabular._DROPPED)
    status = load(write_penguins_pipeline(tmp_path)).describe().extra["tabular_kernel"]
    assert not status["serves"] and "but the kernel answered" in status["reason"]


def test_the_configuration_and_the_sidecar_turn_it_off(tmp_path):
    path = write_penguins_pipeline(tmp_path)
    status = load(path, tabular_kernel=False).describe().extra["tabular_kernel"]
    assert status == {"serves": False, "reason": "runtime.tabular_kernel is off"}
    path.with_name("penguins.meta.json").write_text(json.dumps({"tabular_kernel": False}))
    status = load(path).describe().extra["tabular_kernel"]
    assert status == {"serves": False, "reason": "its metadata file says tabular_kernel: false"}
    path.with_name("penguins.meta.json").write_text(json.dumps({"tabular_kernel": True}))
    assert load(path, tabular_kernel=False).describe().extra["tabular_kernel"]["serves"]


def test_a_model_of_numbers_only_has_no_tabular_kernel_to_speak_of(tmp_path):
    import joblib
    from sklearn.linear_model import LogisticRegression

    from tests.factories import iris

    joblib.dump(LogisticRegression(max_iter=1000).fit(*iris()), tmp_path / "iris.joblib")
    model = load(tmp_path / "iris.joblib")
    assert "tabular_kernel" not in model.describe().extra and not model.describe().takes_table


@pytest.fixture
def penguins_client(make_app, model_dir):
    write_penguins_pipeline(model_dir)
    return make_app(models={"default_model": "penguins"}).test_client()


def test_requests_are_checked_and_answered_as_before(penguins_client):
    from tests.factories import PENGUIN

    info = penguins_client.get("/api/v1/models/penguins/info").get_json()
    assert info["details"]["tabular_kernel"]["serves"]
    response = penguins_client.post("/api/v1/predict/penguins", json={"features": {**PENGUIN, "island": "Atlantis"}})
    assert_error(response, 422, contains="Feature 'island' must be one of")
    for null in ("sex", "bill_length_mm"):  # both nullable: an encoder's NaN category, an imputer
        response = penguins_client.post("/api/v1/predict/penguins", json={"features": {**PENGUIN, null: None}})
        assert response.status_code == 200, response.get_data(as_text=True)
    rows = [PENGUIN, {**PENGUIN, "island": 3}]
    response = penguins_client.post("/api/v1/batch-predict", json={"features": rows, "model_name": "penguins"})
    assert_error(response, 422, contains="row 1: Feature 'island' must be a string")


def test_a_table_of_other_dtypes_than_verified_goes_to_scikit_learn(tmp_path):
    """A sidecar may make a column a pandas categorical: not what the kernel was verified on; the DataFrame serves."""
    model = load(write_penguins_pipeline(tmp_path))
    X = penguins()[0].copy()
    X["island"] = X["island"].astype("category")
    table = Table({name: X[name].array if name == "island" else X[name].to_numpy() for name in X.columns}, len(X))
    assert np.array_equal(model.predict_proba(table), penguins_model("pipeline").predict_proba(X))


def test_the_helper_module_is_imported_beside_the_adapter_and_never_taken_for_a_plugin():
    module = tabular_module()
    assert module is tabular_module() and module.__name__ == "modelserve_plugin_helpers._sklearn_tabular"
    found = build_plugin_manager(BUILTIN_PLUGIN_DIR, AdapterSettings())
    assert "_sklearn_tabular" not in [plugin.name for plugin in found.plugins]

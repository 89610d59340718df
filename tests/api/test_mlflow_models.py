"""MLflow model directories served without MLflow in the server: flavor, signature, provenance."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import yaml

from tests.factories import (
    PENGUIN,
    penguin_records,
    penguins,
    penguins_categorical,
    penguins_model,
    write_penguins_mlflow,
)
from tests.helpers import assert_error

pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def mlflow_dirs(tmp_path_factory):
    """Written once: MLflow's save_model is slow. Each test copies what it needs into its model directory."""
    root = tmp_path_factory.mktemp("mlflow")
    return {kind: write_penguins_mlflow(root, kind) for kind in ("pipeline", "xgboost")}


def copy_into(model_dir, source):
    return shutil.copytree(source, model_dir / source.name)


@pytest.mark.parametrize("kind", ["pipeline", "xgboost"])
def test_a_directory_with_an_mlmodel_loads_and_predicts_as_in_process(client, model_dir, mlflow_dirs, kind):
    directory = copy_into(model_dir, mlflow_dirs[kind])
    response = client.post("/api/v1/models/load", json={"model_name": "mlflow_penguins", "model_path": directory.name})
    assert response.status_code == 200, response.get_json()
    info = client.get("/api/v1/models/mlflow_penguins/info").get_json()
    assert info["adapter"] == ("xgboost" if kind == "xgboost" else "sklearn")
    assert info["file"].startswith(f"{directory.name}/model.")
    assert info["metadata"]["mlflow"]["flavor"] == ("xgboost" if kind == "xgboost" else "sklearn")
    # The MLflow signature is the model's: its names, types and which columns may be missing.
    signature = info["signature"]
    assert signature["source"] == "mlflow" and signature["input"] == "dataframe"
    columns = {c["name"]: c for c in signature["columns"]}
    assert columns["island"]["type"] == "string" and columns["island"]["nullable"] is False
    assert columns["sex"]["nullable"] is True and columns["body_mass_g"]["type"] == "number"
    assert {"python", "scikit-learn" if kind == "pipeline" else "xgboost"} <= set(info["training"])
    # The whole data set (NaN rows included) as the in-process model answers it.
    model = penguins_model(kind)
    X = penguins()[0] if kind == "pipeline" else penguins_categorical()
    answer = client.post(
        "/api/v1/batch-predict",
        json={"model_name": "mlflow_penguins", "dataframe_records": penguin_records(), "return_probabilities": True},
    )
    assert answer.status_code == 200, answer.get_json()
    assert np.array_equal([p["probabilities"] for p in answer.get_json()["predictions"]], model.predict_proba(X))
    # A column MLflow recorded as required refuses null, naming it.
    refused = client.post("/api/v1/predict/mlflow_penguins", json={"features": {**PENGUIN, "island": None}})
    assert_error(refused, 422, contains="Feature 'island' must be a string, got null")


def test_recorded_versions_feed_the_provenance_check(client, model_dir, mlflow_dirs):
    directory = copy_into(model_dir, mlflow_dirs["pipeline"])
    spec = yaml.safe_load((directory / "MLmodel").read_text())
    spec["flavors"]["sklearn"]["sklearn_version"] = "0.24.2"
    (directory / "MLmodel").write_text(yaml.safe_dump(spec))
    response = client.post("/api/v1/models/load", json={"model_name": "old", "model_path": directory.name})
    assert_error(response, 422, contains="scikit-learn 0.24.2")


def test_an_unserved_flavor_is_refused_naming_what_is_served(client, model_dir, mlflow_dirs):
    directory = copy_into(model_dir, mlflow_dirs["pipeline"])
    spec = yaml.safe_load((directory / "MLmodel").read_text())
    spec["flavors"] = {"pytorch": {"model_data": "data"}}
    (directory / "MLmodel").write_text(yaml.safe_dump(spec))
    response = client.post("/api/v1/models/load", json={"model_name": "torch", "model_path": directory.name})
    assert_error(response, 422, contains="no flavor this server serves (it serves sklearn, xgboost; found pytorch)")


def test_a_data_file_outside_the_model_directory_is_refused(client, model_dir, mlflow_dirs, tmp_path):
    directory = copy_into(model_dir, mlflow_dirs["pipeline"])
    spec = yaml.safe_load((directory / "MLmodel").read_text())
    spec["flavors"]["sklearn"]["pickled_model"] = "../../outside.pkl"
    (directory / "MLmodel").write_text(yaml.safe_dump(spec))
    (tmp_path / "outside.pkl").write_bytes(b"x")
    response = client.post("/api/v1/models/load", json={"model_name": "escape", "model_path": directory.name})
    assert_error(response, 400)


def test_mlflow_directories_are_auto_loaded_by_their_name(make_app, model_dir, mlflow_dirs):
    copy_into(model_dir, mlflow_dirs["pipeline"])
    client = make_app().test_client()
    names = [m["name"] for m in client.get("/api/v1/models").get_json()["models"]]
    assert mlflow_dirs["pipeline"].name in names
    assert json.loads(client.get(f"/api/v1/models/{mlflow_dirs['pipeline'].name}/info").data)["loaded"]


def test_an_mlflow_pickle_loads_only_once_trusted(make_app, model_dir, mlflow_dirs):
    """An MLflow directory's pickle runs code like any other: refused until an admin trusts its data file."""
    client = make_app(security={"allow_unverified_pickles": False}).test_client()
    directory = copy_into(model_dir, mlflow_dirs["pipeline"])
    load = {"model_name": "mlflow_penguins", "model_path": directory.name}
    body = assert_error(client.post("/api/v1/models/load", json=load), 403)
    assert "not trusted" in body["message"]
    (data_file,) = [p for p in directory.iterdir() if p.name.startswith("model.")]
    trusted = client.post("/api/v1/models/trust", json={"model_path": f"{directory.name}/{data_file.name}"})
    assert trusted.status_code == 200, trusted.get_json()
    assert client.post("/api/v1/models/load", json=load).status_code == 200

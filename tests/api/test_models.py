"""Model management: list, load, unload, info, adapters."""

from __future__ import annotations

import hashlib
import json

from tests.factories import KNOWN_ROWS, write_custom_model, write_sklearn_classifier, write_xgboost_classifier
from tests.helpers import assert_error

ROW = KNOWN_ROWS["setosa"]


def test_list_models_as_in_the_spec(client):
    body = client.get("/api/v1/models").get_json()
    names = [m["name"] for m in body["models"]]
    assert names == ["iris_classifier", "iris_xgboost"]
    assert body["count"] == 2 and body["default_model"] == "iris_classifier"
    default = body["models"][0]
    assert default["aliases"] == ["default"] and default["loaded"] is True and default["adapter"] == "sklearn"


def test_load_predict_info_delete(client, model_dir):
    write_sklearn_classifier(model_dir, name="custom_model", suffix=".pkl")
    loaded = client.post(
        "/api/v1/models/load",
        json={"model_name": "new_model", "model_path": "custom_model.pkl", "model_type": "sklearn"},
    )
    assert loaded.status_code == 200, loaded.get_json()
    assert loaded.get_json()["model"]["name"] == "new_model"
    assert client.post("/api/v1/predict/new_model", json={"features": ROW}).status_code == 200

    info = client.get("/api/v1/models/new_model/info").get_json()
    data = (model_dir / "custom_model.pkl").read_bytes()
    assert info["sha256"] == hashlib.sha256(data).hexdigest()
    assert info["size_bytes"] == len(data)
    assert info["file"] == "custom_model.pkl"
    assert info["adapter"] == "sklearn" and info["task"] == "classification"
    assert info["model_class"].endswith("LogisticRegression")
    assert info["n_features"] == 4 and info["classes"] == [0, 1, 2]
    assert info["prediction_count"] == 1 and info["loaded_at"].endswith("Z")

    assert client.delete("/api/v1/models/new_model").status_code == 200
    assert_error(client.post("/api/v1/predict/new_model", json={"features": ROW}), 404)
    assert_error(client.get("/api/v1/models/new_model/info"), 404)
    assert (model_dir / "custom_model.pkl").exists()


def test_spec_path_form_relative_to_the_working_directory(make_app, tmp_path, monkeypatch):
    project = tmp_path / "project"
    trained = project / "models" / "trained"
    trained.mkdir(parents=True)
    write_sklearn_classifier(trained, name="custom_model", suffix=".pkl")
    monkeypatch.chdir(project)
    client = make_app(models={"model_directory": "models/trained"}).test_client()
    body = {"model_name": "custom_model", "model_path": "models/trained/custom_model.pkl"}
    assert client.post("/api/v1/models/load", json=body).status_code == 200


def test_adapter_is_inferred_from_the_file(make_app, model_dir):
    write_xgboost_classifier(model_dir, name="booster", suffix=".ubj")
    write_custom_model(model_dir)
    client = make_app(models={"auto_load": False}).test_client()
    assert (
        client.post("/api/v1/models/load", json={"model_name": "b", "model_path": "booster.ubj"}).get_json()["model"][
            "adapter"
        ]
        == "xgboost"
    )
    custom = client.post("/api/v1/models/load", json={"model_name": "t", "model_path": "threshold.py"}).get_json()
    assert custom["model"]["adapter"] == "custom"
    assert client.post("/api/v1/predict/t", json={"features": [1, 1, 5, 1]}).get_json()["prediction"] == 1


def test_corrupt_file_is_refused_and_the_old_model_keeps_serving(client, model_dir):
    (model_dir / "broken.joblib").write_bytes(b"not a pickle at all")
    body = assert_error(
        client.post("/api/v1/models/load", json={"model_name": "iris_classifier", "model_path": "broken.joblib"}),
        422,
    )
    assert "broken.joblib" in body["message"]
    assert client.post("/api/v1/predict/iris_classifier", json={"features": ROW}).status_code == 200


def test_unknown_suffix_names_the_known_types(client, model_dir):
    (model_dir / "weights.onnx").write_bytes(b"\x00")
    body = assert_error(client.post("/api/v1/models/load", json={"model_name": "o", "model_path": "weights.onnx"}), 422)
    assert "sklearn" in body["message"] and "xgboost" in body["message"] and "custom" in body["message"]


def test_max_models_caps_memory_and_evicts_the_least_recently_used(make_app, model_dir):
    write_sklearn_classifier(model_dir, name="third")
    client = make_app(models={"max_models": 2}).test_client()
    listing = client.get("/api/v1/models").get_json()
    assert listing["count"] == 3 and listing["loaded_count"] == 2  # all available, two in memory
    for name in ("iris_classifier", "iris_xgboost", "third", "iris_classifier"):
        assert client.post(f"/api/v1/predict/{name}", json={"features": ROW}).status_code == 200
    loaded = {m["name"]: m["loaded"] for m in client.get("/api/v1/models").get_json()["models"]}
    assert loaded == {"iris_classifier": True, "third": True, "iris_xgboost": False}
    # the evicted model reloads on its next use
    assert client.post("/api/v1/predict/iris_xgboost", json={"features": ROW}).status_code == 200


def test_adapters_are_listed(client):
    adapters = {a["name"]: a for a in client.get("/api/v1/adapters").get_json()["adapters"]}
    assert set(adapters) >= {"sklearn", "xgboost", "custom"}
    assert adapters["sklearn"]["source"] == "builtin" and adapters["sklearn"]["status"] == "active"
    assert ".skops" in adapters["sklearn"]["file_types"]
    assert adapters["xgboost"]["file_types"] == [".json", ".ubj"]


def test_a_file_whose_name_is_no_model_name_is_not_auto_loaded(make_app, model_dir, capfd):
    """``load.joblib`` would be a model the API cannot name (``/models/load`` is the load endpoint)."""
    for stem in ("load", "trust", "two words"):
        write_sklearn_classifier(model_dir, name=stem)
    client = make_app().test_client()
    names = [m["name"] for m in client.get("/api/v1/models").get_json()["models"]]
    assert names == ["iris_classifier", "iris_xgboost"]
    logged = [json.loads(line) for line in capfd.readouterr().err.splitlines() if line.startswith("{")]
    refused = [entry["message"] for entry in logged if entry["message"].startswith("not auto-loading")]
    assert len(refused) == 3 and all("is no model name" in message for message in refused), refused

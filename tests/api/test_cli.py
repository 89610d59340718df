"""``flask --app app create-demo-models``: what ``make serve`` runs before serving."""

from __future__ import annotations

import json

import pytest

from app import create_app
from app.model_files import sha256_of
from tests.conftest import app_config


def test_creates_the_demo_models_then_keeps_them(runner, tmp_path):
    target = tmp_path / "demo"
    data = ["--data-directory", str(tmp_path / "data")]
    result = runner.invoke(args=["create-demo-models", "--directory", str(target), *data])
    assert result.exit_code == 0, result.output
    assert result.output.count("created") == 7  # six models and the spec's batch file
    meta = json.loads((target / "iris_classifier.meta.json").read_text())
    assert meta["labels"] == ["setosa", "versicolor", "virginica"]
    assert meta["sha256"] == sha256_of(target / "iris_classifier.joblib")
    assert {"python", "scikit-learn", "xgboost"} <= set(meta["training"])
    assert json.loads((target / "custom_model.meta.json").read_text())["auto_load"] is False

    again = runner.invoke(args=["create-demo-models", "--directory", str(target), *data])
    assert again.output.count("kept") == 7


def test_demo_models_serve_the_spec_examples(runner, tmp_path):
    target = tmp_path / "demo"
    runner.invoke(args=["create-demo-models", "--directory", str(target), "--data-directory", str(tmp_path / "data")])
    client = create_app(app_config(tmp_path / "served", target)).test_client()
    answer = client.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2], "model_name": "default"})
    assert answer.get_json()["prediction_label"] == "setosa"
    assert [m["name"] for m in client.get("/api/v1/models").get_json()["models"]] == [
        "iris_classifier",
        "iris_xgboost",
        "penguins",
        "production_model",
    ]
    penguin = {"island": "Dream", "bill_length_mm": 46.5, "bill_depth_mm": 17.9, "flipper_length_mm": 192}
    answer = client.post("/api/v1/predict/penguins", json={"features": {**penguin, "body_mass_g": 3500, "sex": None}})
    assert answer.status_code == 200, answer.get_json()
    assert answer.get_json()["prediction_label"] == "Chinstrap"
    for name in ("custom_model", "new_model"):
        loaded = client.post("/api/v1/models/load", json={"model_name": name, "model_path": f"{name}.pkl"})
        assert loaded.status_code == 200, loaded.get_json()
        assert (
            client.post(f"/api/v1/predict/{name}", json={"features": [6.3, 3.3, 6.0, 2.5]}).get_json()[
                "prediction_label"
            ]
            == "virginica"
        )


def test_create_api_key_prints_a_tiered_entry_that_serves_as_printed_and_audits_it(app, runner, make_app):
    result = runner.invoke(
        args=["create-api-key", "loadtest", "--rate-limit", "predict=3/minute", "--rate-limit", "batch_predict=1/hour"]
    )
    assert result.exit_code == 0, result.output
    secret = result.output.split("store it now): ")[1].split()[0]
    entry = json.loads(result.output.splitlines()[-1].removeprefix("  - "))
    assert entry["rate_limits"] == {"predict": "3/minute", "batch_predict": "1/hour"}
    assert entry["roles"] == ["predict"]

    served = make_app(security={"api_keys": [entry], "rate_limits": {"predict": "1/minute"}}).test_client()
    answers = [
        served.post("/api/v1/predict", json={"features": [5.1, 3.5, 1.4, 0.2]}, headers={"X-API-Key": secret})
        for _ in range(4)
    ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]

    audit = app.test_client().get("/api/v1/audit").get_json()
    [created] = [e for e in audit["entries"] if e["action"] == "create_api_key"]
    assert (created["actor"], created["target"], created["outcome"]) == ("cli", "loadtest", "success")
    assert created["details"] == {
        "sha256": entry["sha256"],
        "roles": ["predict"],
        "rate_limits": {"predict": "3/minute", "batch_predict": "1/hour"},
    }
    assert secret not in json.dumps(audit)


@pytest.mark.parametrize(
    "options, message",
    [
        (["predict"], "as GROUP=RATE"),
        (["predict=1/minute", "predict=2/minute"], "give each group once"),
        (["predikt=1/minute"], "predikt: not a rate-limit group"),
        (["predict=lots"], "predict: must be a rate"),
    ],
)
def test_create_api_key_refuses_a_bad_rate_limit_before_making_a_key(app, runner, options, message):
    result = runner.invoke(args=["create-api-key", "loadtest", *[f"--rate-limit={o}" for o in options]])
    assert result.exit_code == 2
    assert message in result.output
    assert "API key for" not in result.output
    entries = app.test_client().get("/api/v1/audit").get_json()["entries"]
    assert [e for e in entries if e["action"] == "create_api_key"] == []

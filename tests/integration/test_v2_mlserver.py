"""The same V2 request to MLServer 1.7.1 and to modelserve, for the same model files, gets the same outputs.

Names, datatypes, shapes and values to 1e-6 (:mod:`bench.v2_equality`), for the
iris scikit-learn and XGBoost models, and for the penguins Pipeline (a DataFrame with
string columns) sent as MLServer's ``pd`` content type: a BYTES input per string column.
MLServer runs from the bench's own venv (``var/bench/mlserver-venv``, made by ``make bench``);
without it the test skips.
"""

from __future__ import annotations

import pytest

from bench.models import write_mlserver_repository
from bench.run import MLSERVER_VENV
from bench.servers import mlserver
from bench.v2_equality import compare
from tests.factories import write_iris_set, write_penguins_pipeline
from tests.helpers import GunicornServer

pytestmark = pytest.mark.integration
MODELS = {
    "iris_classifier": "iris_classifier.joblib",
    "iris_xgboost": "iris_xgboost.json",
    "penguins": "penguins.joblib",
}


@pytest.fixture(scope="module")
def servers(tmp_path_factory):
    if not (MLSERVER_VENV / ".installed-1.7.1").exists():
        pytest.skip(f"MLServer 1.7.1 is not installed in {MLSERVER_VENV} (make bench installs it)")
    root = tmp_path_factory.mktemp("v2-mlserver")
    model_dir = write_iris_set(root / "models")
    write_penguins_pipeline(model_dir)
    repository = root / "mlserver-models"
    write_mlserver_repository(repository, {name: model_dir / file for name, file in MODELS.items()})
    theirs = mlserver(root / "mlserver", MLSERVER_VENV, repository)
    with GunicornServer(root, {"models": {"model_directory": str(model_dir)}}, workers=2) as ours:
        started = theirs.start(None)
        try:
            for name in MODELS:
                theirs.wait_until_serving(name, started, timeout=180)
            yield ours, theirs
        finally:
            theirs.stop()


@pytest.mark.parametrize("model", MODELS)
def test_the_same_request_gets_the_same_outputs(servers, model):
    ours, theirs = servers
    body = "penguins" if model == "penguins" else "iris"
    found = compare(f"{ours.url}/v2/models/{model}/infer", theirs.url(model), {}, model=body)
    assert found and not any(found.values()), found

"""Schemathesis against the service's own OpenAPI document, over HTTP, against real gunicorn.

Every check schemathesis has (``--checks all``), stateful links included, against
a production configuration with an admin key: no 5xx (bar the health probes'
documented 503), only documented status codes, content types, headers and
bodies, ``Allow`` on every 405, schema-valid requests accepted and invalid ones
refused, credentials required where the document says so, and a created job
or listed model reachable through the links the document declares. Bounded in
examples per operation and in time. The few documented exceptions are in
schemathesis.toml beside this file, each with its reason.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from app.security.auth import new_api_key
from tests.factories import write_iris_set
from tests.helpers import GunicornServer
from tests.jobs.conftest import write_iris_csv

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_fuzzing_the_openapi_document_with_every_check_finds_nothing(tmp_path):
    pytest.importorskip("schemathesis")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in the test extra: pip install -e '.[cpu,test]'"
    key, digest = new_api_key()
    data = tmp_path / "data"
    write_iris_csv(data / "data" / "batch" / "large_dataset.csv")  # the document's example, relative to the directory
    config = {
        "environment": "production",
        "models": {"model_directory": str(write_iris_set(tmp_path / "models"))},
        "security": {
            "rate_limit_enabled": False,
            "api_keys": [{"name": "fuzzer", "sha256": digest, "roles": ["admin"]}],
            "allow_unverified_pickles": True,
        },
        "jobs": {"data_directory": str(data), "output_directory": str(tmp_path / "predictions")},
    }
    with GunicornServer(tmp_path, config, workers=2) as server:
        # The document's examples name "production_model" (as the spec does): let it be the iris model.
        alias = server.post(
            "/api/v1/models/iris_classifier/alias", json={"alias": "production_model"}, headers={"X-API-Key": key}
        )
        assert alias.status_code == 200, alias.text
        done = subprocess.run(
            [
                cli,
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--checks",
                "all",
                "--header",
                f"X-API-Key: {key}",
                "--max-examples",
                "15",
                "--max-time",
                "120",
                # One worker: CPython 3.11's parser is not safe to run in two threads at once, and the
                # generators parse lambdas' sources (SystemError: AST constructor recursion depth mismatch).
                "--workers",
                "1",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing,stateful",
            ],
            capture_output=True,
            text=True,
            timeout=400,
        )
    assert done.returncode == 0, done.stdout[-8000:] + done.stderr[-2000:]

"""Schemathesis against the service's own OpenAPI document, over HTTP, against real gunicorn.

Bounded in examples per operation and in time. The checks are in
schemathesis.toml beside this file: any 5xx (bar the health probes'
documented 503), a status code or content type the document does not
declare, a response body that does not match its documented schema.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.factories import write_iris_set
from tests.helpers import GunicornServer

pytestmark = pytest.mark.integration
CONFIG = Path(__file__).with_name("schemathesis.toml")


def test_fuzzing_the_openapi_document_finds_no_server_error_and_no_schema_violation(tmp_path):
    pytest.importorskip("schemathesis")
    cli = shutil.which("schemathesis", path=str(Path(sys.executable).parent))
    assert cli, "schemathesis is in the test extra: pip install -e '.[cpu,test]'"
    config = {
        "models": {"model_directory": str(write_iris_set(tmp_path / "models"))},
        "security": {"rate_limit_enabled": False},
        "jobs": {"data_directory": str(tmp_path / "data"), "output_directory": str(tmp_path / "predictions")},
    }
    with GunicornServer(tmp_path, config, workers=2) as server:
        done = subprocess.run(
            [
                cli,
                "--no-color",
                "--config-file",
                str(CONFIG),
                "run",
                f"{server.url}/openapi.json",
                "--max-examples",
                "15",
                "--max-time",
                "75",
                "--workers",
                "2",
                "--seed",
                "1",
                "--phases",
                "examples,coverage,fuzzing",
            ],
            capture_output=True,
            text=True,
            timeout=300,
        )
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]

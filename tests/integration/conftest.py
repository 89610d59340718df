"""Fixtures the integration modules share; each module brings its own ``server``."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def triton(server):
    """tritonclient's HTTP client for the module's ``server`` (a GunicornServer)."""
    http = pytest.importorskip("tritonclient.http", reason="tritonclient[http] is in the test extra")
    client = http.InferenceServerClient(url=f"127.0.0.1:{server.port}", connection_timeout=30, network_timeout=30)
    yield client
    client.close()

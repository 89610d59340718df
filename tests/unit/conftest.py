"""Fixtures for unit tests that need a real Redis: a client on a scratch database and a unique key prefix."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from typing import Any

import pytest

from tests.helpers import redis_or_skip

#: Database 15, so a developer's own data in database 0 is never touched.
REDIS_URL = os.environ.get("MODELSERVE_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")


@pytest.fixture(scope="session")
def redis_client() -> Iterator[Any]:
    """A client for :data:`REDIS_URL`; every test that needs Redis is skipped when none answers."""
    client = redis_or_skip(REDIS_URL)
    yield client
    client.close()


@pytest.fixture
def redis_prefix(redis_client: Any) -> Iterator[str]:
    """A key prefix of this test's own; its keys are deleted afterwards."""
    prefix = f"modelserve-test-{uuid.uuid4().hex}"
    yield prefix
    keys = list(redis_client.scan_iter(match=f"{prefix}:*"))
    if keys:
        redis_client.delete(*keys)

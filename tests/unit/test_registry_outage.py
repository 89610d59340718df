"""A registry whose Redis goes away: it serves what it read last, refuses changes with 503, and
writes its state back into a Redis that returns empty."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.adapters import AdapterSettings
from app.config import ModelsSection, RegistrySection
from app.plugin_manager import build_plugin_manager
from app.registry import ModelRegistry
from app.state_store import StateStoreUnavailable, build_state_store
from tests.chaos.redis_server import RedisServer
from tests.factories import KNOWN_ROWS
from tests.helpers import poll_until

ROW = [KNOWN_ROWS["setosa"]]


def back_in_redis(registry: ModelRegistry) -> None:
    """Wait for the outage's thread, which asks Redis once a second, to find it answering."""
    poll_until(lambda: not registry.store.dependency.down, "the registry's outage to end", timeout=10)


def registry_on(redis: RedisServer, tmp_path: Path, model_dir: Path) -> ModelRegistry:
    models = ModelsSection().load({"model_directory": str(model_dir), "model_timeout": 0})
    config = RegistrySection().load(
        {"backend": "redis", "redis_url": redis.url(), "redis_prefix": "outage", "state_directory": str(tmp_path)}
    )
    plugins = build_plugin_manager(tmp_path / "plugins", AdapterSettings())
    return ModelRegistry(build_state_store(config), plugins, models)


def test_serves_the_last_state_refuses_changes_and_restores_an_emptied_redis(tmp_path, model_dir, caplog):
    with RedisServer(tmp_path / "redis") as redis:
        registry = registry_on(redis, tmp_path, model_dir)
        registry.set_alias("stable", "iris_xgboost", None)
        generation = registry.snapshot().generation
        redis.kill()
        for _ in range(3):  # one failed look at the store, then none until the outage's thread finds it back
            assert registry.get("default").model.predict(ROW).tolist() == [0]
            assert registry.get("stable").name == "iris_xgboost"
        assert registry.store.dependency.down
        with pytest.raises(StateStoreUnavailable, match=r"redis at 127\.0\.0\.1:\d+/0\) is unreachable"):
            registry.set_alias("other", "iris_xgboost", None)
        assert caplog.text.count("registry: redis at") == 1
        assert caplog.text.count("trust answer 503 until it answers again") == 1
        assert registry.state().models.keys() == {"iris_classifier", "iris_xgboost"}

        redis.start()  # empty: no persistence
        back_in_redis(registry)
        assert registry.get("stable").name == "iris_xgboost"
        assert not registry.store.dependency.down and "restored the state" in caplog.text
        assert registry.store.read().generation == generation  # written back, not forgotten
        assert set(registry.store.read().models) == {"iris_classifier", "iris_xgboost"}
        registry.set_alias("other", "iris_xgboost", None)  # changes work again


def test_a_worker_that_starts_during_the_outage_serves_the_state_saved_on_this_machine(tmp_path, model_dir):
    with RedisServer(tmp_path / "redis") as redis:
        first = registry_on(redis, tmp_path, model_dir)
        first.set_alias("stable", "iris_xgboost", None)
        assert first.get("stable").name == "iris_xgboost"  # read the new generation: saved
        redis.kill()
        replacement = registry_on(redis, tmp_path, model_dir)  # a worker gunicorn starts in place of a killed one
        replacement.warm()
        assert replacement.warmed
        assert replacement.get("stable").name == "iris_xgboost"
        assert replacement.get("default").model.predict(ROW).tolist() == [0]
        with pytest.raises(StateStoreUnavailable):
            replacement.set_alias("other", "iris_xgboost", None)
        redis.start()  # empty: the replacement writes its saved copy back
        back_in_redis(replacement)
        assert replacement.get("stable").name == "iris_xgboost"
        assert set(replacement.store.read().aliases) == {"stable"}


def test_a_worker_that_starts_without_redis_or_a_saved_state_answers_503_until_it_returns(tmp_path, model_dir):
    redis = RedisServer(tmp_path / "redis")  # not started
    registry = registry_on(redis, tmp_path, model_dir)
    registry.warm()  # gunicorn's post_worker_init: must not raise, or gunicorn stops every worker
    assert not registry.warmed
    with pytest.raises(StateStoreUnavailable):
        registry.get("default")
    with redis:
        back_in_redis(registry)
        assert registry.get("default").name == "iris_classifier" and registry.warmed

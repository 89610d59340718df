"""Per-key rate-limit tiers: an API key's ``rate_limits`` or a JWT's tier claim replaces
``security.rate_limits`` for the groups it names, counted by the same limiter in the same storage."""

from __future__ import annotations

import time

import jwt
import pytest

from app.config import ConfigError
from app.security.auth import new_api_key
from app.security.rate_limits import LIMIT_HEADER, REMAINING_HEADER, build_rate_limits
from tests.factories import KNOWN_ROWS
from tests.helpers import assert_error, redis_or_skip

ROW = KNOWN_ROWS["setosa"]
SECRET = "t" * 64
PLAIN_KEY, PLAIN_SHA = new_api_key()
TIERED_KEY, TIERED_SHA = new_api_key()
KEYS = [
    {"name": "scorer", "sha256": PLAIN_SHA, "roles": ["predict"]},
    {"name": "loadtest", "sha256": TIERED_SHA, "roles": ["admin"], "rate_limits": {"predict": "5/minute"}},
]
DEFAULTS = {"predict": "2/minute", "batch_predict": "1/minute", "model_management": "1/minute"}


@pytest.fixture
def client(make_app):
    security = {"api_keys": KEYS, "rate_limits": DEFAULTS, "jwt": {"secret": SECRET, "rate_limits_claim": "tier"}}
    return make_app(security=security).test_client()


def predictions(client, count: int, **headers: str) -> list:
    return [client.post("/api/v1/predict", json={"features": ROW}, headers=headers) for _ in range(count)]


def ignore_breach(limit: str, key: str) -> None:
    pass


def token(**claims) -> str:
    now = int(time.time())
    return jwt.encode({"sub": "partner", "roles": ["predict"], "exp": now + 300, **claims}, SECRET, algorithm="HS256")


def test_a_tiered_key_runs_past_the_default_limit_and_its_headers_say_so(client):
    plain = predictions(client, 3, **{"X-API-Key": PLAIN_KEY})
    assert [r.status_code for r in plain] == [200, 200, 429]
    assert plain[0].headers[LIMIT_HEADER] == "2"

    tiered = predictions(client, 6, **{"X-API-Key": TIERED_KEY})
    assert [r.status_code for r in tiered] == [200] * 5 + [429]
    assert [r.headers[LIMIT_HEADER] for r in tiered] == ["5"] * 6
    assert [r.headers[REMAINING_HEADER] for r in tiered[:5]] == ["4", "3", "2", "1", "0"]
    refused = assert_error(tiered[5], 429, contains="5 per 1 minute")
    assert int(tiered[5].headers["Retry-After"]) > 0
    assert refused["code"] == 429


def test_groups_the_tier_does_not_name_keep_the_default_limits(client):
    headers = {"X-API-Key": TIERED_KEY}
    batch = {"features": [ROW, ROW]}
    answers = [client.post("/api/v1/batch-predict", json=batch, headers=headers) for _ in range(2)]
    assert [r.status_code for r in answers] == [200, 429]
    assert answers[0].headers[LIMIT_HEADER] == "1"


def test_a_jwt_carries_its_tier_in_the_configured_claim(client):
    tiered = predictions(client, 4, Authorization=f"Bearer {token(tier={'predict': '3/minute'})}")
    assert [r.status_code for r in tiered] == [200, 200, 200, 429]
    assert tiered[0].headers[LIMIT_HEADER] == "3"


def test_a_jwt_without_the_claim_gets_the_default_limits(client):
    answers = predictions(client, 3, Authorization=f"Bearer {token()}")
    assert [r.status_code for r in answers] == [200, 200, 429]


@pytest.mark.parametrize(
    "tier, why",
    [
        ({"predict": "lots"}, "must be a rate"),
        ({"predikt": "5/minute"}, "not a rate-limit group"),
        (["5/minute"], "invalid input type"),
    ],
)
def test_a_jwt_with_a_malformed_tier_is_refused(client, tier, why):
    [answer] = predictions(client, 1, Authorization=f"Bearer {token(tier=tier)}")
    assert_error(answer, 401, contains=why)


def test_the_claim_is_ignored_unless_the_configuration_names_it(make_app):
    client = make_app(security={"rate_limits": DEFAULTS, "jwt": {"secret": SECRET}}).test_client()
    answers = predictions(client, 3, Authorization=f"Bearer {token(rate_limits={'predict': '100/minute'})}")
    assert [r.status_code for r in answers] == [200, 200, 429]


@pytest.mark.parametrize(
    "tier, message",
    [
        ({"predikt": "5/minute"}, "security.api_keys.rate_limits.predikt: not a rate-limit group"),
        ({"predict": "5/fortnight"}, "security.api_keys.rate_limits.predict: must be a rate"),
    ],
)
def test_a_key_with_a_bad_tier_stops_start_up_naming_the_key(make_app, tier, message):
    with pytest.raises(ConfigError, match=message):
        make_app(security={"api_keys": [{**KEYS[0], "rate_limits": tier}]})


def test_a_tier_is_counted_apart_from_the_default_limit_of_the_same_client():
    """Same client, same group, same amount: the tier's counter is not the default limit's."""
    security = {"rate_limit_storage": "memory://", "rate_limits": {"predict": "1/minute"}}
    limits = build_rate_limits(security, ignore_breach)
    limits.hit("predict", "user:a")
    assert limits.hit("predict", "user:a", {"predict": "1/minute"}).remaining == 0
    assert limits.hit("predict", "user:b", {"batch_predict": "9/minute"}).limit.amount == 1


def test_tiers_share_the_configured_redis_storage_under_their_own_keys():
    url = "redis://127.0.0.1:6379/12"  # database 12: this test alone
    redis = redis_or_skip(url)
    redis.flushdb()
    try:
        security = {"rate_limit_storage": url, "rate_limits": {"predict": "2/minute"}}
        limits = build_rate_limits(security, ignore_breach)
        limits.hit("predict", "user:loadtest", {"predict": "100000/minute"})
        limits.hit("predict", "user:scorer")
        assert sorted(key.decode() for key in redis.keys("*")) == [
            "LIMITS:LIMITER/tier/user:loadtest/predict/100000/1/minute",
            "LIMITS:LIMITER/user:scorer/predict/2/1/minute",
        ]
    finally:
        redis.flushdb()
        redis.close()

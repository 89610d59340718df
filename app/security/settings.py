"""The ``security`` configuration section and the start-up rules it implies."""

from __future__ import annotations

import logging
from typing import Any

import marshmallow as ma
from marshmallow import validate

from app.errors import ConfigError
from app.validation import model_name_validator

log = logging.getLogger(__name__)

ROLES = ("predict", "admin")
_RATE = validate.Regexp(
    r"^\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?(\s*;\s*\d+\s*(/|per)\s*\d*\s*(second|minute|hour|day)s?)*$",
    error="must be a rate such as 100/minute (or several separated by ';').",
)


class _Strict(ma.Schema):
    class Meta:
        unknown = ma.RAISE


class ApiKeySchema(_Strict):
    """A key as stored: never the secret, only its sha256 (``flask --app app create-api-key``)."""

    name = ma.fields.String(required=True, validate=model_name_validator())
    sha256 = ma.fields.String(
        required=True, validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 hex digits.")
    )
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLES)), required=True, validate=validate.Length(min=1)
    )


class JwtSchema(_Strict):
    algorithm = ma.fields.String(load_default="HS256", validate=validate.OneOf(["HS256", "RS256", "ES256"]))
    #: HS256 shared secret (at least 32 bytes), or env MODELSERVE_JWT_SECRET.
    secret = ma.fields.String(load_default=None, allow_none=True, validate=validate.Length(min=32))
    #: RS256/ES256 public key in PEM, or env MODELSERVE_JWT_PUBLIC_KEY.
    public_key = ma.fields.String(load_default=None, allow_none=True)
    roles_claim = ma.fields.String(load_default="roles", validate=validate.Length(min=1))
    audience = ma.fields.String(load_default=None, allow_none=True)
    issuer = ma.fields.String(load_default=None, allow_none=True)
    leeway_seconds = ma.fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=300))

    @ma.validates_schema
    def _key_matches_algorithm(self, data: dict[str, Any], **_: Any) -> None:
        if data["algorithm"] == "HS256" and data["public_key"]:
            raise ma.ValidationError("HS256 uses secret, not public_key.", field_name="public_key")
        if data["algorithm"] != "HS256" and data["secret"]:
            raise ma.ValidationError(f"{data['algorithm']} uses public_key, not secret.", field_name="secret")


class RateLimitsSchema(_Strict):
    predict = ma.fields.String(load_default="100/minute", validate=_RATE)
    batch_predict = ma.fields.String(load_default="10/minute", validate=_RATE)
    model_management = ma.fields.String(load_default="20/minute", validate=_RATE)


def _nested(schema: type[ma.Schema]) -> ma.fields.Nested:
    return ma.fields.Nested(schema, load_default=lambda: schema().load({}))


class SecuritySection(_Strict):
    enable_cors = ma.fields.Boolean(load_default=False)
    cors_origins = ma.fields.List(ma.fields.String(), load_default=list)
    api_key_header = ma.fields.String(load_default="X-API-Key", validate=validate.Regexp(r"^[A-Za-z0-9-]{1,64}$"))
    api_keys = ma.fields.List(ma.fields.Nested(ApiKeySchema), load_default=list)
    jwt = _nested(JwtSchema)
    #: Production refuses to start without keys or JWT unless this is true.
    allow_anonymous = ma.fields.Boolean(load_default=False)
    #: Whether /metrics needs credentials (any role).
    metrics_require_auth = ma.fields.Boolean(load_default=False)
    rate_limit_enabled = ma.fields.Boolean(load_default=True)
    rate_limits = _nested(RateLimitsSchema)
    #: memory:// (per worker) or redis://host:port/db (shared by workers and replicas).
    rate_limit_storage = ma.fields.String(
        load_default="memory://",
        validate=validate.Regexp(r"^(memory://|redis://|rediss://)", error="must be memory:// or a redis:// URL."),
    )
    #: How many proxies in front of the server may set X-Forwarded-For (0: use the peer address).
    trusted_proxies = ma.fields.Integer(load_default=0, strict=True, validate=validate.Range(min=0, max=10))
    #: sha256 of model files that may be unpickled (pickle, joblib, custom .py).
    trusted_models = ma.fields.List(
        ma.fields.String(validate=validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 hex digits.")),
        load_default=list,
    )
    #: Unpickle files nobody trusted; null: yes in development/testing (with a warning), no in production.
    allow_unverified_pickles = ma.fields.Boolean(load_default=None, allow_none=True)


def auth_configured(security: dict[str, Any]) -> bool:
    jwt = security["jwt"]
    return bool(security["api_keys"] or jwt["secret"] or jwt["public_key"])


def unverified_pickles_allowed(settings: dict[str, Any]) -> bool:
    chosen = settings["security"]["allow_unverified_pickles"]
    return chosen if chosen is not None else settings["environment"] != "production"


def check_startup(settings: dict[str, Any], warn: bool = True) -> None:
    """Refuse an unsafe production start; warn loudly (``warn``) about what development allows."""
    security = settings["security"]
    production = settings["environment"] == "production"
    if production and not auth_configured(security) and not security["allow_anonymous"]:
        raise ConfigError(
            "invalid configuration: security: production needs authentication: set security.api_keys "
            "(flask --app app create-api-key) or security.jwt, or set security.allow_anonymous: true to "
            "run open on purpose"
        )
    if not warn:
        return
    if not auth_configured(security):
        log.warning(
            "authentication is off: every client may predict and manage models (%s mode)", settings["environment"]
        )
    if unverified_pickles_allowed(settings):
        log.warning(
            "UNVERIFIED PICKLES ALLOWED: any pickle, joblib or .py file in the model directory may be loaded, "
            "and loading one runs its code. Set security.allow_unverified_pickles: false and trust files by "
            "sha256 (security.trusted_models or POST /api/v1/models/trust) before exposing this server."
        )

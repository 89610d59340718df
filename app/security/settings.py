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


def _about(description: str) -> dict[str, Any]:
    """A field's ``metadata``: the description the configuration reference (docs/) shows for its key."""
    return {"metadata": {"description": description}}


_SHA256 = validate.Regexp(r"^[0-9a-f]{64}$", error="must be 64 hex digits.")


def _rate(default: str | None, description: str) -> ma.fields.String:
    """A group's rate; without a default (a tier's), a group left out stays out of the loaded mapping."""
    default_kw = {} if default is None else {"load_default": default}
    return ma.fields.String(validate=_RATE, **default_kw, **_about(description))


class RateLimitsSchema(_Strict):
    """Requests per identity (API key name or JWT subject), else per client address."""

    predict = _rate("100/minute", "POST /predict and /predict/{model_name}, counted together.")
    batch_predict = _rate("10/minute", "POST /batch-predict and /predict-async.")
    model_management = _rate("20/minute", "Loading, deleting, aliasing, rolling back and trusting models.")


class RateLimitTierSchema(_Strict):
    """An identity's own limits (a key's ``rate_limits``, a JWT's tier claim): each group named here
    replaces that group's ``security.rate_limits`` for this identity; groups left out keep them."""

    error_messages = {"unknown": "not a rate-limit group: predict, batch_predict or model_management."}

    predict = _rate(None, "This identity's predict limit, instead of security.rate_limits.predict.")
    batch_predict = _rate(None, "This identity's batch_predict limit, instead of security.rate_limits.batch_predict.")
    model_management = _rate(
        None, "This identity's model_management limit, instead of security.rate_limits.model_management."
    )


#: Loads a tier given outside the configuration (a JWT's claim, create-api-key's options).
TIERS = RateLimitTierSchema()


class ApiKeySchema(_Strict):
    """A key as stored: never the secret, only its sha256 (``flask --app app create-api-key``)."""

    name = ma.fields.String(
        required=True,
        validate=model_name_validator(),
        **_about("Who holds the key: the user_id in logs and the actor in the audit trail."),
    )
    sha256 = ma.fields.String(required=True, validate=_SHA256, **_about("sha256 of the key, in hex; never the key."))
    roles = ma.fields.List(
        ma.fields.String(validate=validate.OneOf(ROLES)),
        required=True,
        validate=validate.Length(min=1),
        **_about("What the key may do: predict, admin, or both."),
    )
    rate_limits = ma.fields.Nested(
        RateLimitTierSchema,
        **_about(
            "This key's own limits, e.g. {predict: 100000/minute} for a load-testing key: each group named "
            "replaces security.rate_limits for this key (create-api-key --rate-limit predict=...)."
        ),
    )


class JwtSchema(_Strict):
    """Bearer tokens: HS256 with a shared secret, or RS256/ES256 with a public key."""

    algorithm = ma.fields.String(
        load_default="HS256",
        validate=validate.OneOf(["HS256", "RS256", "ES256"]),
        **_about("The one algorithm tokens must be signed with; any other (none included) is refused."),
    )
    secret = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=32),
        **_about("HS256 shared secret, at least 32 bytes; only with algorithm HS256."),
    )
    public_key = ma.fields.String(
        load_default=None,
        allow_none=True,
        **_about("RS256/ES256 public key in PEM; only with those algorithms."),
    )
    roles_claim = ma.fields.String(
        load_default="roles",
        validate=validate.Length(min=1),
        **_about("The claim holding the token's list of roles."),
    )
    rate_limits_claim = ma.fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.Length(min=1),
        **_about(
            "The claim holding the token's own limits, a mapping such as {predict: 100000/minute} that "
            "replaces security.rate_limits for its groups; null: tokens carry none."
        ),
    )
    audience = ma.fields.String(
        load_default=None, allow_none=True, **_about("When set, tokens must carry this aud claim.")
    )
    issuer = ma.fields.String(
        load_default=None, allow_none=True, **_about("When set, tokens must carry this iss claim.")
    )
    leeway_seconds = ma.fields.Integer(
        load_default=0,
        strict=True,
        validate=validate.Range(min=0, max=300),
        **_about("Clock skew allowed when checking exp and nbf."),
    )

    @ma.validates_schema
    def _key_matches_algorithm(self, data: dict[str, Any], **_: Any) -> None:
        if data["algorithm"] == "HS256" and data["public_key"]:
            raise ma.ValidationError("HS256 uses secret, not public_key.", field_name="public_key")
        if data["algorithm"] != "HS256" and data["secret"]:
            raise ma.ValidationError(f"{data['algorithm']} uses public_key, not secret.", field_name="secret")


def _nested(schema: type[ma.Schema], description: str) -> ma.fields.Nested:
    return ma.fields.Nested(schema, load_default=lambda: schema().load({}), **_about(description))


class SecuritySection(_Strict):
    """Authentication, roles, rate limits, CORS and which model files may be unpickled."""

    enable_cors = ma.fields.Boolean(
        load_default=False, **_about("Answer cross-origin requests from cors_origins, under /api/ only.")
    )
    cors_origins = ma.fields.List(
        ma.fields.String(), load_default=list, **_about("Origins allowed to call the API from a browser.")
    )
    api_key_header = ma.fields.String(
        load_default="X-API-Key",
        validate=validate.Regexp(r"^[A-Za-z0-9-]{1,64}$"),
        **_about("The request header that carries an API key."),
    )
    api_keys = ma.fields.List(
        ma.fields.Nested(ApiKeySchema),
        load_default=list,
        **_about("API keys, each a name, the key's sha256 and its roles (flask --app app create-api-key)."),
    )
    jwt = _nested(JwtSchema, "JSON Web Tokens in Authorization: Bearer; on when secret or public_key is set.")
    allow_anonymous = ma.fields.Boolean(
        load_default=False,
        **_about("Let production start without api_keys or jwt, open to every client, on purpose."),
    )
    metrics_require_auth = ma.fields.Boolean(
        load_default=False, **_about("Ask credentials (role predict) for the metrics endpoint.")
    )
    rate_limit_enabled = ma.fields.Boolean(load_default=True, **_about("Apply rate_limits."))
    rate_limits = _nested(RateLimitsSchema, "Limits per group of endpoints, such as 100/minute.")
    rate_limit_storage = ma.fields.String(
        load_default="shared-memory://",
        validate=validate.Regexp(
            r"^(shared-memory://$|memory://$|redis://|rediss://)",
            error="must be shared-memory://, memory:// or a redis:// URL.",
        ),
        **_about(
            "shared-memory:// (the workers of this machine share counters, in <registry.state_directory>/"
            "rate-limits.bin), memory:// (each worker counts alone) or redis://host:port/db (shared by workers "
            "and replicas; counted per worker while Redis is unreachable)."
        ),
    )
    trusted_proxies = ma.fields.Integer(
        load_default=0,
        strict=True,
        validate=validate.Range(min=0, max=10),
        **_about("How many proxies in front of the server may set X-Forwarded-For (0: use the peer address)."),
    )
    trusted_models = ma.fields.List(
        ma.fields.String(validate=_SHA256),
        load_default=list,
        **_about("sha256 of model files that may be unpickled (pickle, joblib, custom .py)."),
    )
    allow_unverified_pickles = ma.fields.Boolean(
        load_default=None,
        allow_none=True,
        **_about(
            "Unpickle files nobody trusted. null: yes in development and testing (with a warning), no in production."
        ),
    )


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

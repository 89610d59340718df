"""Who is asking: an API key (``X-API-Key``) or a JWT bearer token (flask-jwt-extended).

Keys are compared by their sha256 with ``hmac.compare_digest`` against every
configured key, so timing does not reveal which one nearly matched; a digest
that matched once is then found by one lookup (which can only tell a caller
that a key it already holds is valid). Neither
keys nor tokens are ever logged.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from flask import Flask
from marshmallow import ValidationError

from app.errors import ApiError
from app.security.settings import TIERS

KEY_PREFIX = "ms_"


class Unauthorized(ApiError):
    code = 401

    def __init__(self, message: str):
        super().__init__(message)
        self.data["headers"] = {"WWW-Authenticate": 'Bearer realm="modelserve", ApiKey realm="modelserve"'}


class Forbidden(ApiError):
    code = 403


@dataclass(frozen=True)
class Identity:
    user_id: str
    roles: frozenset[str]
    method: str  # "api_key" or "jwt"
    #: The identity's own limits (group -> rate such as "100000/minute"): its key's ``rate_limits``
    #: or its token's tier claim. They replace ``security.rate_limits`` for the groups they name.
    rate_limits: Mapping[str, str] = field(default_factory=dict)

    def has(self, role: str) -> bool:
        return role in self.roles or "admin" in self.roles  # admin may do what predict may


def new_api_key() -> tuple[str, str]:
    """Return (secret, sha256) for a new key: 256 random bits, shown once."""
    secret = KEY_PREFIX + secrets.token_urlsafe(32)
    return secret, key_digest(secret)


def key_digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def configure_jwt(app: Flask, jwt_settings: dict[str, Any]) -> bool:
    """Set flask-jwt-extended up from ``security.jwt``; return whether JWTs are accepted."""
    if not (jwt_settings["secret"] or jwt_settings["public_key"]):
        return False
    from flask_jwt_extended import JWTManager

    algorithm = jwt_settings["algorithm"]
    app.config.update(
        JWT_ALGORITHM=algorithm,
        JWT_DECODE_ALGORITHMS=[algorithm],  # never "none", never another family
        JWT_TOKEN_LOCATION=["headers"],
        JWT_DECODE_LEEWAY=jwt_settings["leeway_seconds"],
        JWT_DECODE_AUDIENCE=jwt_settings["audience"],
        JWT_DECODE_ISSUER=jwt_settings["issuer"],
        JWT_IDENTITY_CLAIM="sub",
    )
    if algorithm == "HS256":
        app.config["JWT_SECRET_KEY"] = jwt_settings["secret"]
    else:
        app.config["JWT_PUBLIC_KEY"] = jwt_settings["public_key"]
        app.config["JWT_SECRET_KEY"] = secrets.token_hex(32)  # unused for decoding; flask-jwt-extended wants one
    JWTManager(app)
    return True


class Authenticator:
    """Turns a request's credentials into an :class:`Identity`, or raises 401."""

    def __init__(self, security: dict[str, Any], jwt_enabled: bool):
        self.header = security["api_key_header"]
        self._environ_key = "HTTP_" + self.header.upper().replace("-", "_")
        self.keys = [
            (k["sha256"], Identity(k["name"], frozenset(k["roles"]), "api_key", k.get("rate_limits", {})))
            for k in security["api_keys"]
        ]
        #: Digests of keys that matched, and their identities: every request after the first is one lookup.
        self._accepted: dict[str, Identity] = {}
        self.jwt_enabled = jwt_enabled
        self.roles_claim = security["jwt"]["roles_claim"]
        self.rate_limits_claim = security["jwt"]["rate_limits_claim"]

    def identify(self, environ: dict[str, Any]) -> Identity | None:
        """The identity a request's credentials prove, None without any; 401 for credentials that prove none."""
        key = environ.get(self._environ_key)
        if key is not None and self.keys:
            return self._from_key(key)
        authorization = environ.get("HTTP_AUTHORIZATION", "")
        if authorization and self.jwt_enabled:
            return self._from_jwt(authorization)
        if key is not None or authorization:
            raise Unauthorized("These credentials are not accepted by this server.")
        return None

    def _from_key(self, key: str) -> Identity:
        found = self.identity_for_key(key)
        if found is None:
            raise Unauthorized(f"Invalid API key in {self.header}.")
        return found

    def identity_for_key(self, key: str) -> Identity | None:
        """The identity of a configured API key, or None."""
        digest = key_digest(key)
        found = self._accepted.get(digest)  # a key accepted before: its time says nothing new
        if found is not None:
            return found
        for sha256, identity in self.keys:  # no early exit: every key costs the same
            if hmac.compare_digest(digest, sha256):
                found = identity
        if found is not None:
            self._accepted[digest] = found  # bounded by the configured keys
        return found

    def _from_jwt(self, authorization: str) -> Identity:
        from flask_jwt_extended import get_jwt, verify_jwt_in_request
        from flask_jwt_extended.exceptions import JWTExtendedException
        from jwt import PyJWTError

        if not authorization.startswith("Bearer "):
            raise Unauthorized("Authorization must be 'Bearer <token>'.")
        try:
            verify_jwt_in_request()
            claims = get_jwt()
        except (JWTExtendedException, PyJWTError) as exc:
            raise Unauthorized(f"Invalid token: {exc}.") from None
        if "exp" not in claims:
            raise Unauthorized("Invalid token: it has no exp (expiry) claim.")
        roles = claims.get(self.roles_claim, [])
        if isinstance(roles, str):
            roles = roles.split()
        if not isinstance(roles, list) or not all(isinstance(r, str) for r in roles):
            raise Unauthorized(f"Invalid token: claim {self.roles_claim!r} must be a list of role names.")
        return Identity(str(claims["sub"]), frozenset(roles), "jwt", self._tier_of(claims))

    def _tier_of(self, claims: dict[str, Any]) -> dict[str, str]:
        """The token's own limits, from the claim ``security.jwt.rate_limits_claim`` names (when it does)."""
        tier = claims.get(self.rate_limits_claim) if self.rate_limits_claim else None
        if tier is None:
            return {}
        try:
            return TIERS.load(tier)
        except ValidationError as exc:
            raise Unauthorized(
                f"Invalid token: claim {self.rate_limits_claim!r} must map rate-limit groups to rates such as "
                f"100/minute: {exc.messages}."
            ) from None

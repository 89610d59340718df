"""The access check every request passes before its view: who is asking, may they, and within their limit.

The request's :class:`~app.security.policy.Rule` (one lookup), the
credentials when the endpoint is not public, the role, and the rate limit of
the endpoint's group. :mod:`app.pipeline` calls it for every request.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flask import g

from app.security.auth import Authenticator, Forbidden, Identity, Unauthorized
from app.security.policy import PUBLIC, AccessTable
from app.security.rate_limits import LimitState, RateLimits


@dataclass
class AccessControl:
    """What the access check needs, built once per application."""

    table: AccessTable
    authenticator: Authenticator
    #: False when no keys or JWT are configured (development): everyone is an anonymous admin.
    enforce: bool
    rate_limits: RateLimits | None = None

    def check(
        self, endpoint: str | None, method: str, environ: dict[str, Any]
    ) -> tuple[Identity | None, LimitState | None]:
        """The caller's identity and the limit it was counted against; 401, 403 or 429 otherwise."""
        rule = self.table.rule(endpoint, method)
        identity = None
        if self.enforce and rule.role != PUBLIC:
            identity = self.authenticator.identify(environ)
            if identity is None:
                raise Unauthorized(
                    f"This endpoint needs credentials: an API key in {self.authenticator.header} or "
                    "'Authorization: Bearer <JWT>'."
                )
            if not identity.has(rule.role):
                raise Forbidden(f"'{identity.user_id}' does not have the '{rule.role}' role this endpoint needs.")
        limit = None
        if self.rate_limits is not None and rule.rate_group is not None:
            tier = identity.rate_limits if identity is not None else None
            limit = self.rate_limits.hit(rule.rate_group, rate_limit_key(identity, environ), tier)
        return identity, limit


def rate_limit_key(identity: Identity | None, environ: dict[str, Any]) -> str:
    """Whom a limit counts: the identity, else the client's address (as ProxyFix left it)."""
    return f"user:{identity.user_id}" if identity is not None else f"addr:{environ.get('REMOTE_ADDR') or '-'}"


def current_actor() -> str:
    """Who is asking, for the audit trail: the authenticated user, else "anonymous"."""
    return g.get("user_id") or "anonymous"

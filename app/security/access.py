"""The access check every request passes before its view: who is asking, may they, and within their limit.

One ``before_request`` function: the request's :class:`~app.security.policy.Rule`
(one lookup), the credentials when the endpoint is not public, the role, and
the rate limit of the endpoint's group. The limit's headers go on the response,
errors included, from one ``after_request`` function.
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Flask, g, request
from werkzeug.wrappers import Response

from app.security.auth import Authenticator, Forbidden, Identity, Unauthorized
from app.security.policy import PUBLIC, AccessTable
from app.security.rate_limits import RateLimits


@dataclass
class AccessControl:
    """What the access check needs, built once per application."""

    table: AccessTable
    authenticator: Authenticator
    #: False when no keys or JWT are configured (development): everyone is an anonymous admin.
    enforce: bool
    rate_limits: RateLimits | None = None


def rate_limit_key(identity: Identity | None) -> str:
    return f"user:{identity.user_id}" if identity is not None else f"addr:{request.remote_addr or '-'}"


def register_access_check(app: Flask, access: AccessControl) -> None:
    table, authenticator, enforce, rate_limits = access.table, access.authenticator, access.enforce, access.rate_limits

    @app.before_request
    def _check_access() -> None:
        rule = table.rule(request.endpoint, request.method)
        identity = None
        if enforce and rule.role != PUBLIC:
            identity = authenticator.identify()
            if identity is None:
                raise Unauthorized(
                    f"This endpoint needs credentials: an API key in {authenticator.header} or "
                    "'Authorization: Bearer <JWT>'."
                )
            if not identity.has(rule.role):
                raise Forbidden(f"'{identity.user_id}' does not have the '{rule.role}' role this endpoint needs.")
        g.identity = identity
        g.user_id = identity.user_id if identity is not None else None
        if rate_limits is not None and rule.rate_group is not None:
            g.rate_limit = rate_limits.hit(rule.rate_group, rate_limit_key(identity))

    if rate_limits is None:
        return

    @app.after_request
    def _rate_limit_headers(response: Response) -> Response:
        state = g.get("rate_limit")
        if state is not None:
            response.headers.update(state.headers())
        return response


def current_actor() -> str:
    """Who is asking, for the audit trail: the authenticated user, else "anonymous"."""
    return g.get("user_id") or "anonymous"

"""Which role each endpoint needs, declared at the view; enforced once per request.

Every view method says what it needs with ``@requires("predict" | "admin", rate=...)``
or ``@public``. A method that says nothing needs ``admin`` (deny by default),
and a test walks every route to check each one is declared.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Flask, current_app, g, request
from flask_smorest import Blueprint

from app.security.auth import Authenticator, Forbidden, Identity, Unauthorized

PUBLIC = "public"
ROLE_ATTR = "_modelserve_role"
RATE_ATTR = "_modelserve_rate_group"
SECURITY_DOC = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
_DOCS = Blueprint("modelserve_security_docs", __name__)  # only to call alt_response
#: Routes served by flask-smorest itself (OpenAPI document, Swagger UI) and static files.
PUBLIC_ENDPOINTS = {"static"}
PUBLIC_PREFIXES = ("api-docs.", "swagger_ui_assets.")


def requires(role: str, rate: str | None = None) -> Callable[[Any], Any]:
    """Declare the role a view method needs (and the rate-limit group it counts against)."""

    def decorate(func: Any) -> Any:
        func = Blueprint.doc(security=SECURITY_DOC)(func)
        func = _DOCS.alt_response(401, response="UNAUTHORIZED")(func)
        func = _DOCS.alt_response(403, response="FORBIDDEN")(func)
        if rate:
            func = _DOCS.alt_response(429, response="TOO_MANY_REQUESTS")(func)
        setattr(func, ROLE_ATTR, role)
        setattr(func, RATE_ATTR, rate)
        return func

    return decorate


def public(func: Any) -> Any:
    """Declare a view method open to everyone (health probes, for instance)."""
    func = Blueprint.doc(security=[])(func)
    setattr(func, ROLE_ATTR, PUBLIC)
    return func


def view_method(endpoint: str | None, method: str) -> Any:
    view = current_app.view_functions.get(endpoint or "")
    view_class = getattr(view, "view_class", None)
    return getattr(view_class, method.lower(), None) if view_class else view


def declared_role(endpoint: str | None, method: str) -> str | None:
    """The role the endpoint declared, ``PUBLIC``, or ``None`` when it declared nothing."""
    if endpoint is None or endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
        return PUBLIC
    if method == "OPTIONS":
        return PUBLIC  # CORS preflight carries no credentials
    return getattr(view_method(endpoint, method if method != "HEAD" else "GET"), ROLE_ATTR, None)


def register_access_control(app: Flask, authenticator: Authenticator, enforce: bool) -> None:
    """Identify every request; refuse those without the endpoint's role.

    With ``enforce`` false (no keys or JWT configured, development), everyone
    is an anonymous admin, which is what the spec's curl examples assume.
    """

    @app.before_request
    def _check_access() -> None:
        g.user_id, g.identity = None, None
        role = declared_role(request.endpoint, request.method) or "admin"  # undeclared: deny by default
        if role == PUBLIC or not enforce:
            return  # without configured keys or JWT there is nothing to check credentials against
        identity = authenticator.identify()
        if identity is None:
            raise Unauthorized(
                f"This endpoint needs credentials: an API key in {authenticator.header} or "
                "'Authorization: Bearer <JWT>'."
            )
        g.user_id, g.identity = identity.user_id, identity
        if not identity.has(role):
            raise Forbidden(f"'{identity.user_id}' does not have the '{role}' role this endpoint needs.")


def current_identity() -> Identity | None:
    return g.get("identity")

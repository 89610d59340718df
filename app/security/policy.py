"""Which role each endpoint needs and which rate-limit group it counts against, declared at the view.

Every view method says what it needs with ``@requires("predict" | "admin", rate=...)``
or ``@public``. A method that says nothing needs ``admin`` (deny by default),
and a test walks every route to check each one is declared. The declarations
are read once into an :class:`AccessTable`; each request then costs one lookup.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from flask import Flask
from flask_smorest import Blueprint

PUBLIC = "public"
ROLE_ATTR = "modelserve_role"
RATE_ATTR = "modelserve_rate_group"
SECURITY_DOC = [{"ApiKeyAuth": []}, {"BearerAuth": []}]
#: Routes served by flask-smorest itself (OpenAPI document, Swagger UI) and static files.
PUBLIC_ENDPOINTS = {"static"}
PUBLIC_PREFIXES = ("api-docs.", "swagger_ui_assets.")


def requires(role: str, rate: str | None = None, errors: dict[str, str] | None = None) -> Callable[[Any], Any]:
    """Declare the role a view method needs (and the rate-limit group it counts against).

    The OpenAPI document gets the security schemes and the access check's errors
    (401, 403, 429), and ``errors`` (status -> response name) the view adds: one
    documentation decorator for all of them, so one wrapper around the view.
    """
    responses = {"401": "UNAUTHORIZED", "403": "FORBIDDEN", **(errors or {})}
    if rate:
        responses["429"] = "TOO_MANY_REQUESTS"

    def decorate(func: Any) -> Any:
        func = Blueprint.doc(security=SECURITY_DOC, responses=responses)(func)
        setattr(func, ROLE_ATTR, role)
        setattr(func, RATE_ATTR, rate)
        return func

    return decorate


def public(func: Any) -> Any:
    """Declare a view method open to everyone (health probes, for instance)."""
    func = Blueprint.doc(security=[])(func)
    setattr(func, ROLE_ATTR, PUBLIC)
    return func


@dataclass(frozen=True, slots=True)
class Rule:
    """What one endpoint and method need: a role (or ``PUBLIC``) and maybe a rate-limit group."""

    role: str
    rate_group: str | None = None


#: What an endpoint that declared nothing needs: deny by default.
UNDECLARED = Rule("admin")
OPEN = Rule(PUBLIC)


class AccessTable:
    """Every (endpoint, method) of an application and its :class:`Rule`, read from the view declarations."""

    def __init__(self, app: Flask):
        self._rules: dict[tuple[str | None, str], Rule] = {}
        self._declared: dict[tuple[str, str], Rule | None] = {}
        for rule in app.url_map.iter_rules():
            for method in rule.methods or ():
                declared = _declared(app, rule.endpoint, method)
                self._declared[(rule.endpoint, method)] = declared
                self._rules[(rule.endpoint, method)] = declared or UNDECLARED

    def rule(self, endpoint: str | None, method: str) -> Rule:
        """The rule of a request; unknown URLs and methods (404, 405) are open: they reach no view."""
        return self._rules.get((endpoint, method), OPEN)

    def declared(self, endpoint: str, method: str) -> Rule | None:
        """What the view declared, ``OPEN`` for flask-smorest's own routes, ``None`` when it declared nothing."""
        return self._declared.get((endpoint, method))

    def groups(self) -> dict[str, set[str]]:
        """Each rate-limit group and the endpoints that count against it."""
        found: dict[str, set[str]] = {}
        for (endpoint, _), rule in self._rules.items():
            if rule.rate_group:
                found.setdefault(rule.rate_group, set()).add(str(endpoint))
        return found


def _declared(app: Flask, endpoint: str, method: str) -> Rule | None:
    if endpoint in PUBLIC_ENDPOINTS or endpoint.startswith(PUBLIC_PREFIXES):
        return OPEN
    if method == "OPTIONS":
        return OPEN  # CORS preflight carries no credentials
    view = app.view_functions.get(endpoint)
    view_class = getattr(view, "view_class", None)
    target = getattr(view_class, ("GET" if method == "HEAD" else method).lower(), None) if view_class else view
    role = getattr(target, ROLE_ATTR, None)
    if role is None:
        return None
    return Rule(role, getattr(target, RATE_ATTR, None))

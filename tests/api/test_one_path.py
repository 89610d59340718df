"""Every request is answered through Flask's dispatch: nothing wraps the application in front of it."""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from app.pipeline import RequestPipeline


def test_nothing_stands_in_front_of_flask(app):
    assert app.wsgi_app.__func__ is Flask.wsgi_app


def test_behind_trusted_proxies_only_proxyfix_rewrites_the_client_address(make_app):
    app = make_app(security={"trusted_proxies": 1})
    assert isinstance(app.wsgi_app, ProxyFix) and app.wsgi_app.app.__func__ is Flask.wsgi_app


def test_the_request_pipeline_runs_around_every_view(app):
    [before] = app.before_request_funcs[None]
    [after] = app.after_request_funcs[None]
    assert isinstance(before.__self__, RequestPipeline) and after.__self__ is before.__self__
    assert not app.teardown_request_funcs

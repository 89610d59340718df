"""Swagger UI's JavaScript and CSS, served by the service itself.

Production clusters often cannot reach a CDN, so ``/docs`` loads its assets
from ``/docs/assets/``. They come from the ``flask-swagger-ui`` distribution,
which ships Swagger UI's ``dist`` folder (we use its files, not its blueprint):
nothing is vendored in this repository and nothing is fetched at run time.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

from flask import Blueprint, Flask, send_from_directory
from werkzeug.wrappers import Response

ASSETS_URL = "/docs/assets/"
#: Swagger UI's own settings: no validator badge (it would call validator.swagger.io).
SWAGGER_UI_CONFIG = {"validatorUrl": None}


def swagger_ui_dist() -> Path:
    return Path(str(files("flask_swagger_ui") / "dist"))


def register_swagger_assets(app: Flask) -> None:
    """Serve Swagger UI's files at :data:`ASSETS_URL` and point flask-smorest's ``/docs`` page at them."""
    dist = swagger_ui_dist()
    blueprint = Blueprint("swagger_ui_assets", __name__)

    @blueprint.route(ASSETS_URL + "<path:filename>")
    def asset(filename: str) -> Response:
        return send_from_directory(dist, filename, max_age=24 * 3600)

    app.register_blueprint(blueprint)
    app.config.update(OPENAPI_SWAGGER_UI_URL=ASSETS_URL, OPENAPI_SWAGGER_UI_CONFIG=SWAGGER_UI_CONFIG)

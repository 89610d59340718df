"""modelserve: fast, safe, observable HTTP serving for scikit-learn, XGBoost and custom models.

Importing this package does no work: the application is built by
:func:`create_app`, which gunicorn calls once per worker (``"app:create_app()"``).
Plugins write ``from app import hookimpl`` (or make their own
``pluggy.HookimplMarker("modelserve")`` without importing us at all).
"""

from app.hookspecs import hookimpl

__version__ = "0.1.0"

__all__ = ["__version__", "create_app", "hookimpl"]


def create_app(config=None):
    """Build the Flask application (see :func:`app.factory.create_app`)."""
    from app.factory import create_app as _create_app

    return _create_app(config)

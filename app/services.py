"""The application's services: one typed object per application, built by the factory.

Each gunicorn worker builds its own application, so each worker has its own
:class:`Services`; what must be shared between workers lives in the stores
the services talk to (the registry's desired state, the job store, the rate
limit storage, the Prometheus multiprocess directory).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app

if TYPE_CHECKING:
    from app.dependencies import Outage
    from app.jobs.service import JobService
    from app.metrics import Metrics
    from app.plugin_manager import PluginSet
    from app.registry import ModelRegistry
    from app.security.access import AccessControl

#: The one key of ``app.extensions`` that modelserve uses.
EXTENSION = "modelserve"


@dataclass
class Services:
    config: dict[str, Any]
    plugins: PluginSet
    registry: ModelRegistry
    access: AccessControl | None = None
    #: None when ``monitoring.enable_metrics`` is off.
    metrics: Metrics | None = None
    jobs: JobService | None = field(default=None)

    def dependencies(self) -> list[tuple[Outage, Callable[[], bool]]]:
        """The external services this worker uses (Redis), each with a check that asks it now, for health."""
        limits = self.access.rate_limits if self.access is not None else None
        components = [
            self.registry.store,
            self.jobs.store if self.jobs is not None else None,
            limits.storage if limits is not None else None,
        ]
        return [(c.dependency, c.ping) for c in components if getattr(c, "dependency", None) is not None]


def services(app: Flask | None = None) -> Services:
    """The services of ``app``, or of the application handling the current request."""
    return (app if app is not None else current_app).extensions[EXTENSION]

"""The idle reaper: a daemon thread per worker that unloads models unused for ``models.model_timeout`` seconds.

Which versions are idle is the registry's call (:meth:`ServingRegistry.unload_idle
<app.registry.serving.ServingRegistry.unload_idle>`, which spares the default
model); this thread only calls it now and then. It holds the registry weakly,
so it ends when the registry is garbage-collected.
"""

from __future__ import annotations

import logging
import threading
import weakref
from types import MethodType

log = logging.getLogger(__name__)


def start_idle_reaper(unload_idle: MethodType, model_timeout: float) -> None:
    """Call the bound method ``unload_idle`` every quarter of ``model_timeout`` (within 0.05 to 30 s)."""
    interval = min(max(model_timeout / 4, 0.05), 30.0)
    ref = weakref.WeakMethod(unload_idle)
    stop = threading.Event()

    def reap() -> None:
        while not stop.wait(interval):
            alive = ref()
            if alive is None:
                return
            try:
                alive()
            except Exception:
                log.exception("idle model unloading failed")
            del alive

    threading.Thread(target=reap, name="modelserve-idle-reaper", daemon=True).start()

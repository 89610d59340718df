"""The hooks a modelserve plugin may implement, grouped by lifecycle.

Hooks are few and coarse: they are for discovery and events. What an adapter
does for one model is the small typed contract in :mod:`app.adapters`.

A plugin implements a hook with a function of the same name decorated with
``@hookimpl``; it may accept a subset of the arguments listed here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

PROJECT_NAME = "modelserve"
ENTRY_POINT_GROUP = "modelserve.adapters"

hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)

if TYPE_CHECKING:
    from app.adapters import AdapterSettings, ModelAdapter


# --- discovery (once per worker, while the application is built) -----------


@hookspec
def register_adapters(settings: AdapterSettings) -> list[ModelAdapter]:
    """Return the model adapters this plugin provides.

    Called once per worker by :func:`app.plugin_manager.build_plugin_manager`,
    before any model is loaded. ``settings`` carries the runtime options every
    adapter must honour (the number of compute threads a model may use) and the
    directory where an adapter may write files that every worker of the machine
    maps (``shared_models_dir``; None when sharing is off). Whether and how a
    loaded model's memory is shared, its model says through
    :class:`app.adapters.SharedMemoryModel`; one that says nothing is private to
    each worker.

    Return a list of objects that follow :class:`app.adapters.ModelAdapter`
    (an empty list is fine). Adapter names and the file suffixes they claim must
    be unique across all plugins: a clash stops start-up naming both plugins.
    """


# --- model lifecycle events (in the worker where they happen) -------------


@hookspec
def model_loaded(name: str, info: dict[str, Any]) -> None:
    """React to a model becoming servable in this worker.

    Called after an adapter has loaded the model and a trial prediction passed,
    once per version and worker (again after an eviction). ``name`` is the
    model's name; ``info`` is the mapping ``GET /api/v1/models/{name}/info``
    returns for that version. The return value is ignored;
    an exception is logged and does not undo the load.
    """


@hookspec
def model_unloaded(name: str, version: int, reason: str) -> None:
    """React to a model version leaving this worker's memory.

    ``reason`` is ``"deleted"`` (the model was deleted through the API),
    ``"replaced"`` (another version became current and no alias points at this
    one), ``"evicted"`` (``max_models`` reached; it reloads on next use) or
    ``"idle"`` (unused for ``model_timeout`` seconds). The return value is
    ignored; an exception is logged and does not fail the request.
    """


@hookspec
def model_load_failed(name: str, error: str) -> None:
    """React to a model that could not be loaded in this worker.

    Called when an adapter fails, a trial prediction fails, or the file is
    refused (untrusted, changed on disk, trained with other versions), with the
    model's name and the message the client got. The previous version, if any,
    keeps serving. The return value is ignored; an exception is logged.
    """

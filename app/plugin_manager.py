"""Find the adapter plugins, register them with pluggy, and collect their adapters.

Three sources, in this order: the built-in plugins shipped in the project's
``plugins/`` folder, any other ``*.py`` dropped into the configured plugins
directory, and installed packages that declare the ``modelserve.adapters``
entry-point group. A plugin that cannot be imported is logged and listed as
failed, and the server still starts. Clashes between plugins (two adapters
with one name, two adapters claiming one file suffix) and misspelled hooks
stop start-up with an error naming both sides: those are bugs to fix, not to
serve around.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import logging
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any

import pluggy

from app import hookspecs
from app.adapters import AdapterSettings, ModelAdapter
from app.config import PROJECT_ROOT

log = logging.getLogger(__name__)

BUILTIN_PLUGIN_DIR = PROJECT_ROOT / "plugins"
BUILTIN_PLUGINS = ("sklearn_adapter", "xgboost_adapter", "custom_adapter")
ADAPTER_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")


class PluginStartupError(RuntimeError):
    """Plugins that cannot work together; start-up must stop."""


@dataclass
class PluginInfo:
    """One plugin as ``GET /api/v1/adapters`` reports it."""

    name: str
    source: str  # "builtin", "plugins_dir" or "package"
    location: str
    version: str | None = None
    package: str | None = None
    status: str = "active"
    error: str | None = None
    adapters: list[str] = field(default_factory=list)

    def fail(self, error: str) -> None:
        self.status, self.error = "failed", error
        log.error("plugin %s (%s) failed: %s", self.name, self.location, error)


@dataclass
class PluginSet:
    """What discovery found: the pluggy manager, the adapters, and every plugin's status."""

    manager: pluggy.PluginManager
    adapters: dict[str, ModelAdapter]
    plugin_of: dict[str, PluginInfo]
    plugins: list[PluginInfo]
    by_suffix: dict[str, str]


def _import_file(path: Path, module_name: str) -> ModuleType:
    """Import a plugin file by path under a private module name (never a top-level ``plugins``)."""
    spec = importlib.util.spec_from_file_location(module_name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot import {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(module_name, None)
        raise
    return module


def import_beside(plugin_file: str, stem: str) -> ModuleType:
    """The helper module ``<stem>.py`` beside a plugin file, imported once under the plugin's private package.

    Plugins are files imported by path, not a package, so a plugin cannot
    ``import`` its own helpers; a helper's name starts with ``_``, which keeps
    the plugins directory's loader from taking it for a plugin.
    """
    module_name = f"modelserve_plugin_helpers.{stem}"
    found = sys.modules.get(module_name)
    path = Path(plugin_file).with_name(f"{stem}.py")
    if found is not None and getattr(found, "__file__", None) == str(path):
        return found
    return _import_file(path, module_name)


def _candidates(plugin_dir: Path | None) -> list[tuple[PluginInfo, Any]]:
    """Yield (info, loader) pairs; the loader returns the plugin object or raises."""
    from app import __version__

    found: list[tuple[PluginInfo, Any]] = []
    for stem in BUILTIN_PLUGINS:
        path = BUILTIN_PLUGIN_DIR / f"{stem}.py"
        info = PluginInfo(name=stem, source="builtin", location=str(path), version=__version__)
        found.append((info, lambda p=path, s=stem: _import_file(p, f"modelserve_builtin_plugins.{s}")))
    if plugin_dir is not None and plugin_dir.is_dir():
        builtin_dir = BUILTIN_PLUGIN_DIR.resolve()
        for path in sorted(plugin_dir.glob("*.py")):
            if path.name.startswith("_") or (path.parent.resolve() == builtin_dir and path.stem in BUILTIN_PLUGINS):
                continue
            info = PluginInfo(name=path.stem, source="plugins_dir", location=str(path))
            found.append((info, lambda p=path: _import_file(p, f"modelserve_dropin_plugins.{p.stem}")))
    for ep, package, version in _listed_before_fork[0] if _listed_before_fork else _package_entry_points():
        info = PluginInfo(name=ep.name, source="package", location=ep.value, package=package, version=version)
        found.append((info, ep.load))
    return found


PackageEntryPoint = tuple[importlib.metadata.EntryPoint, str | None, str | None]
#: What :func:`list_package_plugins` found in gunicorn's master; empty elsewhere (each build looks).
_listed_before_fork: list[tuple[PackageEntryPoint, ...]] = []


def _package_entry_points() -> tuple[PackageEntryPoint, ...]:
    """The installed packages' adapter entry points, each with its distribution's name and version."""
    found = []
    for ep in importlib.metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
        dist = ep.dist
        found.append((ep, dist.name if dist else None, dist.version if dist else None))
    return tuple(found)


def list_package_plugins() -> None:
    """Look up the plugin packages once, in gunicorn's master before it forks (``api.prefork_imports``).

    Finding entry points reads every installed distribution's metadata; in each worker that
    runs code and touches objects of the master's, pages a worker then copies. Listed here,
    the workers share the list and load the plugins from it. Like a module the master
    imported, a plugin package installed later is found when the server restarts.
    """
    _listed_before_fork[:] = [_package_entry_points()]


def _validate_adapter(adapter: Any) -> str | None:
    name = getattr(adapter, "name", None)
    if not isinstance(name, str) or not ADAPTER_NAME.match(name):
        return f"adapter {adapter!r} needs a name matching {ADAPTER_NAME.pattern}"
    suffixes = getattr(adapter, "file_types", None)
    if not isinstance(suffixes, (list, tuple)) or not all(isinstance(s, str) and s.startswith(".") for s in suffixes):
        return f"adapter {name!r}: file_types must be a list of suffixes such as '.joblib'"
    if not callable(getattr(adapter, "load", None)):
        return f"adapter {name!r} has no load(path, metadata) method"
    return None


def build_plugin_manager(plugin_dir: Path | None, settings: AdapterSettings) -> PluginSet:
    """Discover plugins, register them and collect their adapters (a fresh manager every call)."""
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    infos: list[PluginInfo] = []
    for info, load in _candidates(plugin_dir):
        infos.append(info)
        try:
            plugin = load()
            info.version = info.version or getattr(plugin, "__version__", None)
            pm.register(plugin, name=f"{info.source}:{info.name}")
        except Exception as exc:  # a broken plugin must not take the server down
            info.fail(f"{type(exc).__name__}: {exc}")
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise PluginStartupError(f"plugin {exc.plugin!r} implements an unknown hook: {exc}") from None

    info_by_key = {f"{i.source}:{i.name}": i for i in infos}
    adapters: dict[str, ModelAdapter] = {}
    plugin_of: dict[str, PluginInfo] = {}
    by_suffix: dict[str, str] = {}
    for impl in pm.hook.register_adapters.get_hookimpls():  # in registration order
        info = info_by_key[impl.plugin_name]
        try:
            provided = list(impl.function(**{a: settings for a in impl.argnames if a == "settings"}) or [])
            problems = [p for p in map(_validate_adapter, provided) if p]
            if problems:
                raise TypeError("; ".join(problems))
        except Exception as exc:
            info.fail(f"register_adapters failed: {type(exc).__name__}: {exc}")
            pm.unregister(name=impl.plugin_name)
            continue
        for adapter in provided:
            if adapter.name in adapters:
                other = plugin_of[adapter.name]
                raise PluginStartupError(
                    f"adapter name {adapter.name!r} is provided by both {other.name} ({other.location}) "
                    f"and {info.name} ({info.location})"
                )
            for suffix in adapter.file_types:
                suffix = suffix.lower()
                if suffix in by_suffix:
                    other = plugin_of[by_suffix[suffix]]
                    raise PluginStartupError(
                        f"file type {suffix!r} is claimed by adapter {by_suffix[suffix]!r} of {other.name} "
                        f"and by adapter {adapter.name!r} of {info.name}"
                    )
                by_suffix[suffix] = adapter.name
            adapters[adapter.name] = adapter
            plugin_of[adapter.name] = info
            info.adapters.append(adapter.name)
    return PluginSet(manager=pm, adapters=adapters, plugin_of=plugin_of, plugins=infos, by_suffix=by_suffix)

"""Plugin discovery: built-ins, the plugins directory, failures that are listed, clashes that stop start-up,
and the model lifecycle hooks."""

from __future__ import annotations

import hashlib
import importlib.metadata
import json
import sys

import pytest

from app import __version__, plugin_manager
from app.adapters import AdapterSettings
from app.hookspecs import ENTRY_POINT_GROUP
from app.plugin_manager import BUILTIN_PLUGIN_DIR, PluginStartupError, build_plugin_manager
from tests.factories import KNOWN_ROWS, write_sklearn_classifier, write_sklearn_regressor
from tests.helpers import assert_error
from tests.plugins.conftest import adapter_plugin_source

BUILTINS = {"sklearn_adapter": "sklearn", "xgboost_adapter": "xgboost", "custom_adapter": "custom"}
ROW = KNOWN_ROWS["setosa"]

RAISES_ON_IMPORT = 'raise RuntimeError("plugin exploded at import")\n'

REGISTER_RAISES = """
from app import hookimpl


@hookimpl
def register_adapters(settings):
    raise ValueError("no licence for this adapter")
"""

MISSPELLED_HOOK = """
from app import hookimpl


@hookimpl
def register_adapter(settings):
    return []
"""

EVENT_RECORDER = """
import json
from pathlib import Path

from app import hookimpl

EVENTS = Path(__file__).with_name("events.jsonl")


def _record(**event):
    with EVENTS.open("a", encoding="utf-8") as fh:
        fh.write(json.dumps(event) + "\\n")


@hookimpl
def model_loaded(name, info):
    _record(hook="model_loaded", name=name, info=info)


@hookimpl
def model_unloaded(name, reason):
    _record(hook="model_unloaded", name=name, reason=reason)


@hookimpl
def model_load_failed(name, error):
    _record(hook="model_load_failed", name=name, error=error)
"""


def invalid_adapter_plugin(adapter_body: str, returns: str = "[Bad()]") -> str:
    """A plugin whose adapter class ``Bad`` has ``adapter_body`` and, unless it sets ``load``, a load method."""
    load = (
        "" if "load =" in adapter_body else "\n    def load(self, path, metadata):\n        raise NotImplementedError\n"
    )
    return f"""
from app import hookimpl


class Bad:
{adapter_body}
{load}


@hookimpl
def register_adapters(settings):
    return {returns}
"""


def by_name(plugin_set):
    return {info.name: info for info in plugin_set.plugins}


def listed(client) -> dict[str, dict]:
    body = client.get("/api/v1/adapters").get_json()
    assert body["count"] == len(body["adapters"])
    return {row["name"]: row for row in body["adapters"]}


def events(plugin_dir) -> list[dict]:
    path = plugin_dir / "events.jsonl"
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


# --- discovery ----------------------------------------------------------------


def test_the_three_builtins_are_plugins(tmp_path):
    plugins = build_plugin_manager(tmp_path / "no-such-dir", AdapterSettings())
    builtin = {info.name: info for info in plugins.plugins if info.source == "builtin"}
    assert list(builtin) == list(BUILTINS)
    for plugin, adapter in BUILTINS.items():
        info = builtin[plugin]
        assert info.status == "active" and info.error is None
        assert info.adapters == [adapter] and info.version == __version__
        assert info.location == str(BUILTIN_PLUGIN_DIR / f"{plugin}.py")
        assert plugins.plugin_of[adapter] is info
    assert plugins.by_suffix[".joblib"] == "sklearn" and plugins.by_suffix[".skops"] == "sklearn"
    assert plugins.by_suffix[".ubj"] == "xgboost" and plugins.by_suffix[".py"] == "custom"


def test_builtins_are_listed_by_the_api(client):
    rows = listed(client)
    for plugin, adapter in BUILTINS.items():
        row = rows[adapter]
        assert (row["plugin"], row["source"], row["status"]) == (plugin, "builtin", "active")
        assert row["version"] == __version__ and row["error"] is None and row["package"] is None


def test_a_plugins_dir_that_is_the_builtin_folder_does_not_load_them_twice():
    """The default config points ``plugins.directory`` at the project's own ``plugins/`` folder."""
    plugins = build_plugin_manager(BUILTIN_PLUGIN_DIR, AdapterSettings())
    assert [info.name for info in plugins.plugins if info.source != "package"] == list(BUILTINS)


def test_plugin_packages_listed_before_fork_are_what_each_build_loads(tmp_path, monkeypatch):
    """gunicorn's master lists the plugin packages once (api.prefork_imports); its workers do not look again."""
    (tmp_path / "listed_tripler.py").write_text(adapter_plugin_source(), encoding="utf-8")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="tripler", value="listed_tripler", group=ENTRY_POINT_GROUP)
    monkeypatch.setattr(plugin_manager, "_listed_before_fork", [])
    monkeypatch.setattr(importlib.metadata, "entry_points", lambda group: [entry] if group == ENTRY_POINT_GROUP else [])
    plugin_manager.list_package_plugins()

    def not_again(group):
        raise AssertionError("entry points looked up again after the listing")

    monkeypatch.setattr(importlib.metadata, "entry_points", not_again)
    try:
        for _ in range(2):
            info = by_name(build_plugin_manager(tmp_path / "no-such-dir", AdapterSettings()))["tripler"]
            assert (info.source, info.status, info.location, info.adapters) == (
                "package",
                "active",
                "listed_tripler",
                ["triple"],
            )
    finally:
        sys.modules.pop("listed_tripler", None)


def test_a_dropped_in_plugin_is_discovered(plugin_dir, write_plugin):
    path = write_plugin("tripler", adapter_plugin_source())
    plugins = build_plugin_manager(plugin_dir, AdapterSettings())
    info = by_name(plugins)["tripler"]
    assert (info.source, info.status, info.location) == ("plugins_dir", "active", str(path))
    assert info.version == "1.2.3" and info.adapters == ["triple"]
    assert plugins.by_suffix[".triple"] == "triple"


def test_a_dropped_in_adapter_serves_a_model(make_app, model_dir, write_plugin):
    write_plugin("tripler", adapter_plugin_source())
    (model_dir / "sum.triple").write_text("3")
    client = make_app().test_client()
    row = listed(client)["triple"]
    assert row["source"] == "plugins_dir" and row["file_types"] == [".triple"] and row["status"] == "active"

    loaded = client.post("/api/v1/models/load", json={"model_name": "tripled", "model_path": "sum.triple"})
    assert loaded.status_code == 200, loaded.get_json()
    assert loaded.get_json()["model"]["adapter"] == "triple"
    body = client.post("/api/v1/predict/tripled", json={"features": [1, 2, 3.5]}).get_json()
    assert body["prediction"] == pytest.approx(19.5)


def test_files_starting_with_an_underscore_are_ignored(plugin_dir, write_plugin):
    write_plugin("_helpers", RAISES_ON_IMPORT)
    write_plugin("__init__", RAISES_ON_IMPORT)
    plugins = build_plugin_manager(plugin_dir, AdapterSettings())
    assert {info.name for info in plugins.plugins if info.source == "plugins_dir"} == set()
    assert all(info.status == "active" for info in plugins.plugins)


def test_each_build_gets_a_fresh_plugin_manager(plugin_dir, write_plugin, tmp_path):
    write_plugin("tripler", adapter_plugin_source())
    first = build_plugin_manager(plugin_dir, AdapterSettings())
    second = build_plugin_manager(plugin_dir, AdapterSettings())
    assert first.manager is not second.manager
    assert first.manager.get_plugin("plugins_dir:tripler") is not second.manager.get_plugin("plugins_dir:tripler")
    assert first.adapters["triple"] is not second.adapters["triple"]

    without = build_plugin_manager(tmp_path / "empty", AdapterSettings())
    assert "triple" not in without.adapters
    assert without.manager.get_plugin("plugins_dir:tripler") is None
    assert "triple" in first.adapters  # an earlier build is not changed by a later one


# --- failures that are listed, and the server still starts ----------------------


@pytest.mark.parametrize(
    ("source", "error"),
    [
        (RAISES_ON_IMPORT, "RuntimeError: plugin exploded at import"),
        ("def broken(:\n", "SyntaxError"),
        ("import modelserve_no_such_dependency\n", "ModuleNotFoundError"),
    ],
    ids=["raises", "syntax-error", "missing-dependency"],
)
def test_a_plugin_that_cannot_be_imported_is_failed_and_the_server_serves(make_app, write_plugin, source, error):
    write_plugin("broken", source)
    client = make_app().test_client()
    row = listed(client)["broken"]
    assert (row["source"], row["status"], row["file_types"]) == ("plugins_dir", "failed", [])
    assert error in row["error"]
    assert listed(client)["sklearn"]["status"] == "active"
    body = client.post("/api/v1/predict/iris_classifier", json={"features": ROW}).get_json()
    assert body["prediction_label"] == "setosa"


def test_a_broken_plugin_does_not_stop_the_others(plugin_dir, write_plugin):
    write_plugin("a_broken", RAISES_ON_IMPORT)
    write_plugin("b_tripler", adapter_plugin_source())
    plugins = build_plugin_manager(plugin_dir, AdapterSettings())
    assert by_name(plugins)["a_broken"].status == "failed"
    assert by_name(plugins)["b_tripler"].status == "active" and "triple" in plugins.adapters


def test_a_plugin_whose_register_adapters_raises_is_failed(make_app, plugin_dir, write_plugin):
    write_plugin("unlicensed", REGISTER_RAISES)
    info = by_name(build_plugin_manager(plugin_dir, AdapterSettings()))["unlicensed"]
    assert info.status == "failed" and info.adapters == []
    assert info.error == "register_adapters failed: ValueError: no licence for this adapter"

    client = make_app().test_client()
    assert listed(client)["unlicensed"]["status"] == "failed"
    assert client.post("/api/v1/predict/iris_classifier", json={"features": ROW}).status_code == 200


@pytest.mark.parametrize(
    ("body", "returns", "error"),
    [
        ("    file_types = ('.bad',)", "[Bad()]", "needs a name"),
        ("    name = 'Not Valid'\n    file_types = ('.bad',)", "[Bad()]", "needs a name"),
        ("    name = 'bad'\n    file_types = '.bad'", "[Bad()]", "file_types must be a list"),
        ("    name = 'bad'\n    file_types = ('bad',)", "[Bad()]", "file_types must be a list"),
        ("    name = 'bad'\n    file_types = 5", "[Bad()]", "TypeError"),
        ("    name = 'bad'\n    file_types = ('.bad',)\n    load = None", "[Bad()]", "no load(path, metadata)"),
        ("    name = 'bad'\n    file_types = ('.bad',)", "Bad()", "TypeError"),
    ],
    ids=["no-name", "bad-name", "file-types-string", "suffix-without-dot", "file-types-int", "no-load", "not-a-list"],
)
def test_a_plugin_returning_an_invalid_adapter_is_failed(plugin_dir, write_plugin, body, returns, error):
    write_plugin("invalid", invalid_adapter_plugin(body, returns))
    plugins = build_plugin_manager(plugin_dir, AdapterSettings())
    info = by_name(plugins)["invalid"]
    assert info.status == "failed" and info.error.startswith("register_adapters failed")
    assert error in info.error
    assert "bad" not in plugins.adapters and ".bad" not in plugins.by_suffix
    assert plugins.manager.get_plugin("plugins_dir:invalid") is None


@pytest.mark.parametrize(
    "body", ["    name = 'bad'", "    name = 'bad'\n    file_types = None"], ids=["missing", "none"]
)
def test_an_adapter_without_file_types_is_failed(plugin_dir, write_plugin, body):
    write_plugin("invalid", invalid_adapter_plugin(body))
    info = by_name(build_plugin_manager(plugin_dir, AdapterSettings()))["invalid"]
    assert info.status == "failed" and "file_types" in info.error


# --- clashes and misspelled hooks stop start-up -------------------------------------


def test_two_plugins_with_one_adapter_name_stop_start_up(make_app, plugin_dir, write_plugin):
    write_plugin("first_tripler", adapter_plugin_source("triple", (".triple",)))
    write_plugin("second_tripler", adapter_plugin_source("triple", (".tri",)))
    with pytest.raises(PluginStartupError, match="adapter name 'triple'") as raised:
        build_plugin_manager(plugin_dir, AdapterSettings())
    assert "first_tripler" in str(raised.value) and "second_tripler" in str(raised.value)
    with pytest.raises(PluginStartupError, match="first_tripler.*second_tripler"):
        make_app()


def test_a_plugin_reusing_a_builtin_adapter_name_stops_start_up(plugin_dir, write_plugin):
    write_plugin("my_sklearn", adapter_plugin_source("sklearn", (".mysk",)))
    with pytest.raises(PluginStartupError, match="'sklearn'.*sklearn_adapter.*my_sklearn"):
        build_plugin_manager(plugin_dir, AdapterSettings())


@pytest.mark.parametrize("suffix", [".joblib", ".JOBLIB"])
def test_two_adapters_claiming_one_suffix_stop_start_up(make_app, plugin_dir, write_plugin, suffix):
    write_plugin("joblib_thief", adapter_plugin_source("thief", (suffix,)))
    with pytest.raises(PluginStartupError, match="'.joblib'") as raised:
        build_plugin_manager(plugin_dir, AdapterSettings())
    message = str(raised.value)
    assert "'sklearn' of sklearn_adapter" in message and "'thief' of joblib_thief" in message
    with pytest.raises(PluginStartupError):
        make_app()


def test_a_misspelled_hook_stops_start_up(make_app, plugin_dir, write_plugin):
    write_plugin("typo", MISSPELLED_HOOK)
    with pytest.raises(PluginStartupError, match="unknown hook") as raised:
        build_plugin_manager(plugin_dir, AdapterSettings())
    assert "register_adapter" in str(raised.value) and "typo.py" in str(raised.value)
    with pytest.raises(PluginStartupError):
        make_app()


# --- the lifecycle hooks: model_loaded and model_unloaded --------------------------


def test_model_loaded_fires_with_the_name_and_info(make_app, model_dir, plugin_dir, write_plugin):
    write_plugin("recorder", EVENT_RECORDER)
    client = make_app(models={"auto_load": False}).test_client()
    path = write_sklearn_regressor(model_dir, name="width")
    assert events(plugin_dir) == []

    assert client.post("/api/v1/models/load", json={"model_name": "w", "model_path": "width.joblib"}).status_code == 200
    (event,) = events(plugin_dir)
    assert event["hook"] == "model_loaded" and event["name"] == "w"
    info = event["info"]
    assert info["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["name"] == "w" and info["file"] == "width.joblib" and info["adapter"] == "sklearn"
    assert info["loaded"] is True and info["task"] == "regression" and info["n_features"] == 3


def test_model_loaded_fires_for_auto_loaded_models(make_app, plugin_dir, write_plugin):
    write_plugin("recorder", EVENT_RECORDER)
    client = make_app().test_client()
    client.get("/api/v1/models")
    loaded = {e["name"]: e["info"]["origin"] for e in events(plugin_dir) if e["hook"] == "model_loaded"}
    assert loaded == {"iris_classifier": "auto_load", "iris_xgboost": "auto_load"}


def test_model_unloaded_fires_with_reason_deleted(make_app, plugin_dir, write_plugin):
    write_plugin("recorder", EVENT_RECORDER)
    client = make_app().test_client()
    assert client.delete("/api/v1/models/iris_xgboost").status_code == 200
    unloaded = [e for e in events(plugin_dir) if e["hook"] == "model_unloaded"]
    assert unloaded == [{"hook": "model_unloaded", "name": "iris_xgboost", "reason": "deleted"}]


def test_model_unloaded_fires_with_reason_replaced(make_app, model_dir, plugin_dir, write_plugin):
    write_plugin("recorder", EVENT_RECORDER)
    first = write_sklearn_classifier(model_dir, name="first")
    second = write_sklearn_regressor(model_dir, name="second")
    client = make_app(models={"auto_load": False}).test_client()
    for path in (first, second):
        response = client.post("/api/v1/models/load", json={"model_name": "m", "model_path": path.name})
        assert response.status_code == 200, response.get_json()
    sequence = [(e["hook"], e["name"], e.get("reason") or e["info"]["file"]) for e in events(plugin_dir)]
    assert sequence == [
        ("model_loaded", "m", "first.joblib"),
        ("model_loaded", "m", "second.joblib"),  # the new version is warmed first,
        ("model_unloaded", "m", "replaced"),  # then the old one leaves
    ]


def test_a_failing_model_loaded_hook_does_not_undo_the_load(make_app, model_dir, write_plugin):
    write_plugin(
        "grumpy",
        """
        from app import hookimpl


        @hookimpl
        def model_loaded(name, info):
            raise RuntimeError("not today")
        """,
    )
    write_sklearn_regressor(model_dir, name="width")
    client = make_app(models={"auto_load": False}).test_client()
    assert client.post("/api/v1/models/load", json={"model_name": "w", "model_path": "width.joblib"}).status_code == 200
    assert client.post("/api/v1/predict/w", json={"features": [5.1, 3.5, 1.4]}).status_code == 200


def test_a_failing_model_unloaded_hook_does_not_fail_the_delete(make_app, write_plugin):
    write_plugin(
        "grumpy",
        """
        from app import hookimpl


        @hookimpl
        def model_unloaded(name, reason):
            raise RuntimeError("not today")
        """,
    )
    client = make_app().test_client()
    assert client.delete("/api/v1/models/iris_xgboost").status_code == 200
    assert_error(client.post("/api/v1/predict/iris_xgboost", json={"features": ROW}), 404)


def test_model_load_failed_fires_with_the_clients_message(make_app, model_dir, plugin_dir, write_plugin):
    write_plugin("recorder", EVENT_RECORDER)
    (model_dir / "broken.joblib").write_bytes(b"not a pickle")
    client = make_app(models={"auto_load": False}).test_client()
    response = client.post("/api/v1/models/load", json={"model_name": "b", "model_path": "broken.joblib"})
    assert response.status_code == 422
    (event,) = [e for e in events(plugin_dir) if e["hook"] == "model_load_failed"]
    assert event["name"] == "b" and event["error"] == response.get_json()["message"]

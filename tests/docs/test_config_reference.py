"""The configuration reference is generated from the schema: every key is in it, described."""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Iterator
from types import ModuleType

import pytest

from app.config import ENV_VARS, load_config
from tests.helpers import PROJECT_ROOT

HOOK = PROJECT_ROOT / "docs" / "hooks" / "config_reference.py"


@pytest.fixture(scope="module")
def hook() -> Iterator[ModuleType]:
    """The mkdocs hook, imported by path as mkdocs does (docs/ is not a package)."""
    spec = importlib.util.spec_from_file_location("modelserve_docs_config_reference", HOOK)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    yield module
    del sys.modules[spec.name]


def leaf_keys(tree: dict, prefix: str = "") -> set[str]:
    keys = set()
    for name, value in tree.items():
        keys |= leaf_keys(value, f"{prefix}{name}.") if isinstance(value, dict) else {f"{prefix}{name}"}
    return keys


def test_every_configuration_key_has_a_description(hook):
    keys = hook.config_keys()
    assert len(keys) > 50
    assert [key.name for key in keys if not (key.description or "").strip()] == []


def test_the_reference_lists_every_key_the_loader_returns(hook):
    listed = {key.name for key in hook.config_keys() if not key.section}
    assert leaf_keys(load_config(environ={})) <= listed


def test_every_environment_variable_names_a_listed_key(hook):
    by_name = {key.name: key for key in hook.config_keys()}
    for env, dotted in ENV_VARS.items():
        assert dotted in by_name, f"{env} sets {dotted}, which the schema does not have"
        assert by_name[dotted].env == env


def test_the_rendered_reference_shows_type_default_range_and_variable(hook):
    text = hook.render()
    row = next(line for line in text.splitlines() if "`api.port`" in line)
    assert "integer, 1 to 65,535" in row and "`8000`" in row and "`API_PORT`" in row
    assert "one of `sync`, `gthread`" in text
    assert "`security.api_keys[].roles`" in text
    assert "`config/security.yaml` | `MODELSERVE_SECURITY_CONFIG`" in text

"""mkdocs hook: the configuration reference, rendered from the schema that validates the configuration.

``docs/configuration.md`` holds the marker ``<!-- config-reference -->``; at build time it is
replaced by one table per section of :class:`app.config.ConfigSchema`, walking the nested
sections (``app.security.settings``, ``app.jobs.settings``, ...) down to every key. Each row
shows the key's dotted name, type and allowed values (from the field's validators), default,
the environment variable that sets it (:data:`app.config.ENV_VARS`) and the description from
the field's ``metadata``. A key added to the schema appears here by itself; a key without a
description fails the build.
"""

from __future__ import annotations

import inspect
import itertools
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

MARKER = "<!-- config-reference -->"
PAGE = "configuration.md"
ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:  # mkdocs run from a checkout without an installed modelserve
    sys.path.insert(0, str(ROOT))

import marshmallow as ma  # noqa: E402
from marshmallow import validate  # noqa: E402

from app.config import DEFAULT_CONFIG_FILES, ENV_VARS, PROJECT_ROOT, ConfigSchema  # noqa: E402

_TYPES = {ma.fields.Integer: "integer", ma.fields.Float: "number", ma.fields.Boolean: "boolean"}


@dataclass(frozen=True)
class Key:
    """One configuration key, as the reference shows it."""

    name: str  #: dotted, e.g. ``security.jwt.secret``; ``security.api_keys[].name`` for an item's field
    type: str
    allowed: str
    default: str
    env: str | None
    description: str | None
    section: bool = False  #: a nested mapping of keys, described by its rows below


def config_keys(schema: ma.Schema | None = None, prefix: str = "") -> list[Key]:
    """Every key of ``schema`` (default: the whole configuration), nested sections walked in order."""
    schema = schema if schema is not None else ConfigSchema()
    env_of = {key: env for env, key in ENV_VARS.items()}
    keys: list[Key] = []
    for name, field in schema.fields.items():
        dotted = f"{prefix}{name}"
        description = field.metadata.get("description")
        if isinstance(field, ma.fields.Nested):
            if not prefix:  # a top-level section: its docstring describes it
                description = description or _docstring(field.schema)
            keys.append(Key(dotted, "section", "", "", env_of.get(dotted), description, section=True))
            keys.extend(config_keys(field.schema, dotted + "."))
            continue
        keys.append(Key(dotted, _type(field), _allowed(field), _default(field), env_of.get(dotted), description))
        inner = getattr(field, "inner", None)
        if isinstance(inner, ma.fields.Nested):  # a list of objects: their fields too
            keys.extend(config_keys(inner.schema, dotted + "[]."))
    return keys


def _docstring(schema: ma.Schema) -> str | None:
    doc = inspect.getdoc(type(schema))
    return " ".join(doc.split("\n\n")[0].split()) if doc else None


def _type(field: ma.fields.Field) -> str:
    if isinstance(field, ma.fields.List):
        inner = "object" if isinstance(field.inner, ma.fields.Nested) else _type(field.inner)
        text = f"list of {inner}s"
    else:
        text = next((name for cls, name in _TYPES.items() if isinstance(field, cls)), "string")
    return f"{text} or null" if field.allow_none else text


def _validators(field: ma.fields.Field) -> list[Any]:
    found = list(field.validators)
    if isinstance(field, ma.fields.List):
        found += [("item", v) for v in field.inner.validators]
    return found


def _allowed(field: ma.fields.Field) -> str:
    parts = []
    for validator in _validators(field):
        each = ""
        if isinstance(validator, tuple):
            each, validator = "each: ", validator[1]
        text = _explain(validator)
        if text:
            parts.append(each + text)
    return "; ".join(parts)


def _explain(validator: Any) -> str:
    if isinstance(validator, validate.OneOf):
        return "one of " + ", ".join(f"`{choice}`" for choice in validator.choices)
    if isinstance(validator, validate.Range):
        low, high = validator.min, validator.max
        if low is not None and high is not None:
            return f"{_number(low)} to {_number(high)}"
        return f"at least {_number(low)}" if low is not None else f"at most {_number(high)}"
    if isinstance(validator, validate.Length):
        if validator.min and validator.max is None:
            return "not empty" if validator.min == 1 else f"at least {validator.min} characters"
        return f"{validator.min or 0} to {validator.max} long"
    if isinstance(validator, validate.Regexp):
        if validator.error and validator.error != validate.Regexp.default_message:
            return validator.error.rstrip(".")[0].lower() + validator.error.rstrip(".")[1:]
        return f"matches `{validator.regex.pattern}`"
    return ""


def _number(value: float) -> str:
    return f"{value:,}" if isinstance(value, int) and value >= 10_000 else str(value)


def _default(field: ma.fields.Field) -> str:
    if field.required:
        return "required"
    value = field.load_default
    if value is ma.missing:
        return ""
    value = value() if callable(value) else value
    if isinstance(value, str):
        return f"`{value}`"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"`{json.dumps(value)}`"


def _cell(text: str | None) -> str:
    return (text or "").replace("|", "\\|").replace("\n", " ")


def render() -> str:
    """The reference as Markdown: the files that set keys, then one table per top-level key or section."""
    lines = ["| File | Environment variable that names another file |", "|---|---|"]
    lines += [f"| `{path.relative_to(PROJECT_ROOT)}` | `{env}` |" for env, path in DEFAULT_CONFIG_FILES]
    for top, group in itertools.groupby(config_keys(), key=lambda key: key.name.split(".")[0]):
        keys = list(group)
        lines += ["", f"## `{top}`", ""]
        if keys[0].section:
            lines += [_cell(keys[0].description), ""]
            keys = keys[1:]
        lines += ["| Key | Default | Type and description |", "|---|---|---|"]
        lines += [_row(key) for key in keys]
    return "\n".join(lines) + "\n"


def _row(key: Key) -> str:
    kind = key.type + (f", {key.allowed}" if key.allowed else "")
    env = f" Environment variable: `{key.env}`." if key.env else ""
    anchor = f'<a id="{key.name}"></a>'  # link as configuration.md#api.port
    return f"| {anchor}`{key.name}` | {_cell(key.default)} | *{_cell(kind)}.* {_cell(key.description)}{env} |"


def on_page_markdown(markdown: str, page: Any, config: Any, files: Any) -> str:
    """Put the generated reference where the configuration page asks for it."""
    if page.file.src_uri != PAGE:
        return markdown
    if MARKER not in markdown:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"{PAGE} lost its {MARKER} marker: the configuration reference has nowhere to go")
    undescribed = [key.name for key in config_keys() if not key.description]
    if undescribed:
        from mkdocs.exceptions import PluginError

        raise PluginError(f"configuration keys without a description (metadata): {', '.join(undescribed)}")
    return markdown.replace(MARKER, render())

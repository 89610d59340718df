"""The meta-test: every hook in ``app.hookspecs`` is documented and has a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from app import hookspecs

TESTS = Path(__file__).resolve().parent.parent
SENTENCE_END = re.compile(r"[.!?](?:\s|$)")


def hooks() -> list:
    marker = f"{hookspecs.PROJECT_NAME}_spec"
    return [fn for _, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, marker)]


def test_the_hooks_are_found():
    assert {fn.__name__ for fn in hooks()} >= {"register_adapters", "model_loaded", "model_unloaded"}


@pytest.mark.parametrize("hook", hooks(), ids=lambda fn: fn.__name__)
def test_every_hook_is_documented(hook):
    doc = inspect.getdoc(hook) or ""
    assert len(SENTENCE_END.findall(doc)) > 1, f"{hook.__name__} needs a docstring of more than one sentence"


@pytest.mark.parametrize("hook", hooks(), ids=lambda fn: fn.__name__)
def test_every_hook_has_a_test(hook):
    name = re.compile(rf"\b{hook.__name__}\b")
    testing = [
        path.relative_to(TESTS).as_posix()
        for path in sorted(TESTS.rglob("test_*.py"))
        if path.resolve() != Path(__file__).resolve() and name.search(path.read_text(encoding="utf-8"))
    ]
    assert testing, f"no test file under tests/ mentions the hook {hook.__name__}"

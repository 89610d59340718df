"""Fixtures for plugin tests: the plugins directory the app is configured with, drop-in plugin sources,
and one cache of compiled tree libraries for the session (the same tiny model compiles once)."""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest


def adapter_plugin_source(name: str = "triple", file_types: Sequence[str] = (".triple",)) -> str:
    """A drop-in plugin (written as a plugin author would) whose model predicts 3 * the row sum.

    Its model file holds the number of features as text.
    """
    return textwrap.dedent(
        f'''
        """Test plugin providing the {name!r} adapter."""

        import numpy as np

        from app import hookimpl
        from app.adapters import ModelDescription

        __version__ = "1.2.3"


        class Tripler:
            def __init__(self, n_features):
                self.n_features = n_features

            def predict(self, X):
                return 3 * np.asarray(X).sum(axis=1)

            def describe(self):
                return ModelDescription(model_class="dropin.Tripler", task="regression", n_features=self.n_features)


        class TripleAdapter:
            name = {name!r}
            file_types = {tuple(file_types)!r}

            def load(self, path, metadata):
                return Tripler(int(path.read_text()))


        @hookimpl
        def register_adapters(settings):
            return [TripleAdapter()]
        '''
    )


@pytest.fixture
def plugin_dir(tmp_path: Path) -> Path:
    """The plugins directory ``make_app`` is configured with (``tests.conftest.app_config``)."""
    directory = tmp_path / "plugins"
    directory.mkdir(exist_ok=True)
    return directory


@pytest.fixture
def write_plugin(plugin_dir: Path) -> Callable[[str, str], Path]:
    """Write ``source`` as ``<name>.py`` into the plugins directory; return its path."""

    def write(name: str, source: str) -> Path:
        path = plugin_dir / f"{name}.py"
        path.write_text(textwrap.dedent(source), encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def trees_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A compiled-trees cache shared by the tests that do not test the cache itself."""
    return tmp_path_factory.mktemp("compiled-trees")

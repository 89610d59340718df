"""No module under app/ imports itself back, even lazily or only for type checking.

A cycle hidden inside a function or under ``if TYPE_CHECKING:`` still ties two
modules together: neither can be read, tested or moved without the other. The
graph is built from the source with ``ast``, so every import counts: top level,
inside functions, and type-checking-only ones.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import app

ROOT = Path(app.__file__).parent
PACKAGE = "app"


def module_names(root: Path = ROOT, package: str = PACKAGE) -> dict[str, Path]:
    """Every module under ``root`` by dotted name; a package is named by its ``__init__.py``."""
    found = {}
    for path in sorted(root.rglob("*.py")):
        parts = list(path.relative_to(root).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join([package, *parts])] = path
    return found


def imported_names(name: str, path: Path) -> Iterator[str]:
    """The dotted names ``path`` imports, relative ones resolved; ``from a import b`` gives ``a.b``."""
    is_package = path.name == "__init__.py"
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                parts = name.split(".")
                base = parts[: len(parts) - node.level + (1 if is_package else 0)]
                origin = ".".join(base + ([node.module] if node.module else []))
            else:
                origin = node.module or ""
            yield from (origin if alias.name == "*" else f"{origin}.{alias.name}" for alias in node.names)


def longest_module(dotted: str, modules: dict[str, Path]) -> str | None:
    """The longest prefix of ``dotted`` that is a module: ``app.registry.ModelRegistry`` gives ``app.registry``."""
    parts = dotted.split(".")
    for end in range(len(parts), 0, -1):
        candidate = ".".join(parts[:end])
        if candidate in modules:
            return candidate
    return None


def import_graph(modules: dict[str, Path], package: str = PACKAGE) -> dict[str, set[str]]:
    """Module -> the modules of ``package`` it imports; imports of the root package itself are ignored."""
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for dotted in imported_names(name, path):
            target = longest_module(dotted, modules)
            if target is not None and target != package:
                graph[name].add(target)
    return graph


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's algorithm: the groups of modules that reach each other (each group of two or more holds a cycle)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(graph[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            group = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                group.append(member)
                if member == node:
                    break
            groups.append(sorted(group))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return [g for g in groups if len(g) > 1 or g[0] in graph[g[0]]]


def a_cycle(graph: dict[str, set[str]], group: list[str]) -> list[str]:
    """One cycle through the group's first module, as ``[a, b, ..., a]``."""
    start, members = group[0], set(group)
    path, seen = [start], {start}

    def walk(node: str) -> bool:
        for nxt in sorted(graph[node] & members):
            if nxt == start:
                path.append(start)
                return True
            if nxt not in seen:
                seen.add(nxt)
                path.append(nxt)
                if walk(nxt):
                    return True
                path.pop()
        return False

    walk(start)
    return path


def test_the_module_graph_has_no_cycle():
    graph = import_graph(module_names())
    cycles = list(strongly_connected(graph))
    for group in cycles:
        print("import cycle:", " -> ".join(a_cycle(graph, group)), f"(modules in it: {', '.join(group)})")
    assert not cycles, f"{len(cycles)} import cycle(s) under app/; see the printed output"


# --- the graph builder itself -------------------------------------------------------------------


def write_package(root: Path, files: dict[str, str]) -> dict[str, Path]:
    for relative, text in files.items():
        path = root / "pkg" / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    return module_names(root / "pkg", "pkg")


def test_every_kind_of_import_counts(tmp_path):
    modules = write_package(
        tmp_path,
        {
            "__init__.py": "from pkg.a import f\n",
            "a.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from pkg.b import B\n",
            "b.py": "def later():\n    from . import c\n",
            "c.py": "import pkg.sub.d.Name\n",
            "sub/__init__.py": "from .d import x\nfrom .. import a\n",
            "sub/d.py": "from ..c import y\nfrom . import e\nimport pkg\n",
            "sub/e.py": "",
        },
    )
    graph = import_graph(modules, "pkg")
    assert graph == {
        "pkg": {"pkg.a"},
        "pkg.a": {"pkg.b"},
        "pkg.b": {"pkg.c"},
        "pkg.c": {"pkg.sub.d"},
        "pkg.sub": {"pkg.sub.d", "pkg.a"},
        "pkg.sub.d": {"pkg.c", "pkg.sub.e"},
        "pkg.sub.e": set(),
    }
    assert strongly_connected(graph) == [["pkg.c", "pkg.sub.d"]]
    assert a_cycle(graph, ["pkg.c", "pkg.sub.d"]) == ["pkg.c", "pkg.sub.d", "pkg.c"]

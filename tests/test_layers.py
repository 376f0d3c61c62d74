"""The layering of annotation/ (DESIGN.md, "Layers inside annotation/"): no import circles, arrows one way.

Every import counts, module level or inside a function: a late import is still a circle.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def import_graph(package: str) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (every import statement, relative ones resolved)."""
    files = {}
    for path in (REPO / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(REPO).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets |= {alias.name for alias in node.names}
            elif isinstance(node, ast.ImportFrom):
                source = (".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                          if node.level else node.module or "")
                targets |= {source} | {f"{source}.{alias.name}" for alias in node.names}
        found = {owner(t) for t in targets} - {None, module}
        # a module importing its own package's __init__ is not an edge of interest
        graph[module] = {t for t in found if not module.startswith(t + ".")}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in list(graph):
        if v not in index:
            visit(v)
    return out


def test_the_checker_finds_a_circle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_circle_in_annotation():
    assert cycles(import_graph("annotation")) == []


def test_arrows_point_one_way():
    graph = import_graph("annotation")

    def imports(prefix: str, target: str) -> list[str]:
        return sorted(m for m, deps in graph.items() if m.startswith(prefix) and any(
            d == target or d.startswith(target + ".") for d in deps))

    assert imports("annotation.selectors", "annotation.services") == []  # selectors never call services
    assert imports("annotation.ml_adapter", "annotation.services") == []  # the adapter serves services
    assert imports("annotation.api", "annotation.ml_adapter") == []  # views go through services and selectors
    for module in ("annotation.api", "annotation.management", "annotation.tasks"):
        for path in [p for p in (REPO / module.replace(".", "/")).glob("**/*.py")] or \
                [REPO / (module.replace(".", "/") + ".py")]:
            tree = ast.parse(path.read_text())
            engine = [n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)
                      and (n.module or "").startswith("ml_engine")]
            assert engine == [], f"{path.relative_to(REPO)} imports the engine directly: {engine}"

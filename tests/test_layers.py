"""The layering of annotation/ (DESIGN.md, "Layers inside annotation/") and of ml_engine/: no import circles, arrows
one way, and the engine never imports the platform.

Every import counts, module level or inside a function: a late import is still a circle. So does a module loaded by
name: a dotted path given as a string literal to ``import_string`` / ``import_module`` / ``__import__``, or the
string literals of the setting passed to them (``import_string(settings.ATLAS_JOB_ENQUEUE)`` depends on what
atlas/settings.py names there). A Celery task sent by name (``send_task``) is a message, not an import: the worker
imports the tasks module on its own; ``test_the_task_sent_by_name_is_registered`` ties the name to the task instead.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SETTINGS = REPO / "atlas" / "settings.py"
LOADERS = {"import_string", "import_module", "__import__"}  # calls whose first argument names a module
DOTTED = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)+")


def setting_paths(settings: Path = SETTINGS) -> dict[str, set[str]]:
    """Setting name -> the dotted paths among the string literals of its assignment (its default, for an
    ``os.environ.get(NAME, "a.b.c")``)."""
    found: dict[str, set[str]] = {}
    for node in ast.parse(settings.read_text()).body:
        if isinstance(node, ast.Assign):
            strings = {n.value for n in ast.walk(node.value) if isinstance(n, ast.Constant) and isinstance(n.value, str)
                       and DOTTED.fullmatch(n.value)}
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, set()).update(strings)
    return found


def imports_of(tree: ast.AST, base: list[str], settings: dict[str, set[str]], is_module=lambda name: False) -> set[str]:
    """Every dotted name the module imports (absolute; `base` is its package, for relative imports), at any depth,
    loaders' string arguments included. `from P import x` names P.x when that is a module (is_module), else P."""
    targets: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            source = (".".join(base[: len(base) - node.level + 1] + ([node.module] if node.module else []))
                      if node.level else node.module or "")
            targets |= {f"{source}.{a.name}" if is_module(f"{source}.{a.name}") else source for a in node.names}
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else func.attr if isinstance(func, ast.Attribute) else ""
            if name not in LOADERS:
                continue
            arg = node.args[0]
            if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
                targets.add(arg.value)
            elif isinstance(arg, ast.Attribute) and isinstance(arg.value, ast.Name) and arg.value.id == "settings":
                targets |= settings.get(arg.attr, set())
    return targets


def import_graph(package: str, root: Path = REPO, settings: Path = SETTINGS) -> dict[str, set[str]]:
    """Module -> the modules of the same package it imports (every import statement, relative ones resolved, and
    every module loaded by name). Importing a package's submodule is an edge to the submodule only; importing names
    from a package's __init__ is an edge to it (a submodule whose package's __init__ imports it back is a circle)."""
    files = {}
    for path in (root / package).rglob("*.py"):
        if "migrations" in path.parts:
            continue
        parts = path.relative_to(root).with_suffix("").parts
        files[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    paths = setting_paths(settings) if settings.exists() else {}

    def owner(name: str) -> str | None:
        while name and name not in files:
            name = name.rpartition(".")[0]
        return name or None

    graph: dict[str, set[str]] = {}
    for module, path in files.items():
        base = module.split(".") if path.name == "__init__.py" else module.split(".")[:-1]
        targets = imports_of(ast.parse(path.read_text()), base, paths, files.__contains__)
        graph[module] = {owner(t) for t in targets} - {None, module}
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


def write_package(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)


def test_the_checker_sees_late_imports_and_modules_loaded_by_name(tmp_path):
    write_package(tmp_path, {
        "pkg/__init__.py": "",
        "pkg/a.py": "from pkg import b\n",
        "pkg/b.py": "def f():\n    from django.utils.module_loading import import_string\n"
                    "    return import_string('pkg.a.thing')\n",
        "pkg/c.py": "from django.conf import settings\nfrom django.utils.module_loading import import_string\n\n"
                    "def send(job):\n    import_string(settings.PKG_SEND)(job)\n",
        "pkg/d.py": "def run():\n    from . import c\n",
        "pkg/e.py": "import importlib\nimportlib.import_module('pkg.f')\n",
        "pkg/f.py": "from pkg.e import x\n",
        "pkg/sub/__init__.py": "def load():\n    from pkg.sub import child\n",
        "pkg/sub/child.py": "from pkg.sub import load\n",
        "pkg/sub/plain.py": "from pkg.sub import child\n",  # a submodule only: not an edge to sub/__init__
        "settings.py": "import os\nPKG_SEND = os.environ.get('PKG_SEND', 'pkg.d.send')\nOTHER = 'pkg.a'\n",
    })
    graph = import_graph("pkg", root=tmp_path, settings=tmp_path / "settings.py")
    assert graph["pkg.c"] == {"pkg.d"} and graph["pkg.sub.plain"] == {"pkg.sub.child"}
    assert sorted(cycles(graph)) == [["pkg.a", "pkg.b"], ["pkg.c", "pkg.d"], ["pkg.e", "pkg.f"],
                                     ["pkg.sub", "pkg.sub.child"]]


def test_the_task_sent_by_name_is_registered():
    from annotation import tasks
    from annotation.services import dispatch
    from atlas import celery_app

    assert tasks.run_job_task.name == dispatch.RUN_JOB and dispatch.RUN_JOB in celery_app.tasks


def test_no_import_circle_in_annotation():
    assert cycles(import_graph("annotation")) == []


def test_no_import_circle_in_the_engine():
    assert cycles(import_graph("ml_engine")) == []


def test_the_engine_never_imports_the_platform():
    paths = setting_paths()
    for path in (REPO / "ml_engine").rglob("*.py"):
        module = path.relative_to(REPO).with_suffix("").parts
        base = list(module if path.name == "__init__.py" else module[:-1])
        found = sorted(t for t in imports_of(ast.parse(path.read_text()), base, paths)
                       if t.split(".")[0] in ("django", "celery", "kombu", "rest_framework", "annotation", "atlas"))
        assert found == [], f"{path.relative_to(REPO)} imports the platform: {found}"


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

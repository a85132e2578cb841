"""The package's structure: no import circle, modules of a readable size, one place that
lists fragments for reading, and the CLI only above the library."""

from __future__ import annotations

import ast
from pathlib import Path

import lakever

ROOT = Path(lakever.__file__).parent
#: About 600 lines per module (STYLE.md); a little slack for docstrings.
MAX_LINES = 650


def _modules() -> dict[str, Path]:
    out = {}
    for path in ROOT.rglob("*.py"):
        parts = path.relative_to(ROOT.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        out[name] = path
    return out


def _imports(path: Path, modules: dict[str, Path]) -> set[str]:
    """Every lakever module ``path`` imports, at any depth (functions, TYPE_CHECKING)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            # ``from lakever import contract`` names a module; ``from lakever.x import y``
            # names lakever.x (or lakever.x.y when that is a module).
            submodules = [f"{node.module}.{a.name}" for a in node.names]
            names = [n for n in submodules if n in modules] or [node.module]
        else:
            continue
        for name in names:
            while name and name not in modules:
                name = name.rpartition(".")[0]
            if name.startswith("lakever"):
                found.add(name)
    return found


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {m: _imports(p, modules) - {m} for m, p in modules.items()}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on: set[str] = set()
    out: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def test_no_import_circle():
    graph = _graph()
    # The package root re-exports everything; modules below it never import it back.
    graph = {m: deps - {"lakever"} for m, deps in graph.items() if m != "lakever"}
    assert _cycles(graph) == []


def test_the_cycle_detector_finds_cycles():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _cycles({"a": {"b"}, "b": set()}) == []


def test_the_library_never_imports_the_cli_or_the_package_root():
    for module, deps in _graph().items():
        if module.startswith("lakever.cli") or module in ("lakever", "lakever.__main__"):
            continue
        assert not any(d.startswith("lakever.cli") for d in deps), module
        assert "lakever" not in deps, f"{module} imports the package root"


def test_no_module_is_too_long():
    long = {
        str(p.relative_to(ROOT.parent)): n
        for p in ROOT.rglob("*.py")
        if (n := len(p.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_one_place_lists_fragments_for_reading():
    """Read tasks and scan plans are made by the planner only (and defined by the reader and
    the tasks module, which cuts tasks into row-group runs)."""
    makers = set()
    for path in ROOT.rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.Call):
                f = node.func
                name = (
                    f.id
                    if isinstance(f, ast.Name)
                    else f.attr
                    if isinstance(f, ast.Attribute)
                    else ""
                )
                text = ast.unparse(f)
                if name == "ScanPlan" or text.endswith("ReadTask.of") or name == "ReadTask":
                    makers.add(path.name)
    assert makers <= {"planner.py", "reader.py", "tasks.py"}, makers

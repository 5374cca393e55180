"""The package's import graph: no cycle between ztwizard modules, and the wizard never imports the
command line (the CLI builds the core and hands it to `tui.make_app`).

Read statically from the source (ast), so lazy imports inside functions count too: a cycle that
only bites at call time is still a cycle. Imports under `if TYPE_CHECKING:` do not run and are
left out."""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parent.parent / "ztwizard"


def _module_name(path: Path) -> str:
    parts = ["ztwizard", *path.relative_to(PKG).with_suffix("").parts]
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _type_checking_only(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or \
        (isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING")


def import_graph(pkg: Path = PKG) -> dict[str, set[str]]:
    """module -> the ztwizard modules it imports (a `from pkg import sub` names the submodule)."""
    files = {_module_name(p): p for p in pkg.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for mod, path in files.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        skipped = {id(n) for top in ast.walk(tree) if isinstance(top, ast.If) and _type_checking_only(top)
                   for n in ast.walk(top)}
        base = mod.split(".") if path.name == "__init__.py" else mod.split(".")[:-1]
        out: set[str] = set()
        for node in ast.walk(tree):
            if id(node) in skipped:
                continue
            if isinstance(node, ast.Import):
                out.update(a.name for a in node.names)
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    up = base[:len(base) - (node.level - 1)]
                    target = ".".join(up + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                for a in node.names:
                    sub = f"{target}.{a.name}"
                    out.add(sub if sub in files else target)
        graph[mod] = {m for m in out if m in files and m != mod}
    return graph


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(graph.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                found.append(sorted(comp))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_the_graph_is_read_from_the_package():
    graph = import_graph()
    # a few edges that must exist for the graph to mean anything
    assert "ztwizard.core" in graph["ztwizard.cli"]  # the CLI builds the core (a lazy import)
    assert "ztwizard.core" in graph["ztwizard.tui.app"]
    assert "ztwizard.engine" in graph["ztwizard.core"]
    assert "ztwizard.journal" in graph["ztwizard.core"]  # `from . import journal as J`


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_no_import_cycle_between_ztwizard_modules():
    assert cycles(import_graph()) == []


def test_the_wizard_never_imports_the_command_line():
    offenders = sorted(m for m, deps in import_graph().items()
                       if m.startswith("ztwizard.tui") and "ztwizard.cli" in deps)
    assert offenders == []

"""No import circle among stepml's modules: every import counts, lazy ones inside functions too
(only ``if TYPE_CHECKING:`` blocks are left out, they never run). A circle means two modules that
cannot be understood, tested or moved apart; break it by moving the shared piece to its own module
(as ``columns.py`` and ``recipes.py`` were)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src"


def module_name(path: Path) -> str:
    parts = path.relative_to(SRC).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str]) -> set[str]:
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):  # drop `if TYPE_CHECKING:` blocks
        for field in ("body", "orelse"):
            children = getattr(node, field, None)
            if isinstance(children, list):
                setattr(node, field, [c for c in children if not (
                    isinstance(c, ast.If) and getattr(c.test, "id", getattr(c.test, "attr", None)) == "TYPE_CHECKING")])
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names} & modules
            # `from package import submodule` depends on the submodule, not the whole package
            found.update(submodules if submodules else {node.module})
    return found & modules


def import_graph() -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (SRC / "stepml").rglob("*.py")}
    names = set(paths)
    return {name: imports_of(path, names) - {name} for name, path in paths.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        for other in graph[node]:
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return found


def test_stepml_has_no_import_circle() -> None:
    found = circles(import_graph())
    assert found == [], f"import circles: {found}"


def test_the_check_finds_a_circle() -> None:
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


@pytest.mark.parametrize("module", ["stepml.preprocessing", "stepml.columns", "stepml.recipes"])
def test_reading_a_table_does_not_import_validation_or_training(module: str) -> None:
    graph = import_graph()
    assert not graph[module] & {"stepml.validation", "stepml.training", "stepml.tuning"}

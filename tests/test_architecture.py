"""The layout's rules, checked on the source: one-way arrows between the packages and no import cycles.

Imports are read from each module's syntax tree: module-level imports (including those inside ``try``), not
those under ``if TYPE_CHECKING:`` or inside functions (which run later and cannot deadlock an import).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("incentive_envs", "wrappers", "designer")
ALLOWED = {
    "incentive_envs": set(),
    "wrappers": {"incentive_envs"},
    "designer": {"incentive_envs", "wrappers"},
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING")


def _top_level_imports(path: Path, module: str) -> set[str]:
    """Our modules imported when ``module`` is imported (``from a import b`` counts ``a.b`` if it is a module)."""
    known = _modules()
    found: set[str] = set()

    def visit(body: list[ast.stmt]) -> None:
        for node in body:
            if isinstance(node, ast.If) and _is_type_checking(node):
                visit(node.orelse)
            elif isinstance(node, (ast.If, ast.Try)):
                visit(node.body)
                visit(node.orelse)
                for handler in getattr(node, "handlers", []):
                    visit(handler.body)
            elif isinstance(node, ast.Import):
                found.update(alias.name for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = {f"{node.module}.{alias.name}" for alias in node.names}
                # ``from pkg import submodule`` needs only the submodule (Python binds it mid-package-init)
                found.update(names & known.keys())
                if names - known.keys():
                    found.add(node.module)

    visit(ast.parse(path.read_text()).body)
    return {name for name in found if name in known and name != module}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return {name: _top_level_imports(path, name) for name, path in _modules().items()}


def test_arrows_point_one_way(graph):
    """incentive_envs knows nothing of wrappers or designers; wrappers know nothing of designers."""
    bad = [f"{m} imports {d}" for m, deps in graph.items() for d in deps
           if d.split(".")[0] != m.split(".")[0] and d.split(".")[0] not in ALLOWED[m.split(".")[0]]]
    assert not bad, bad


def test_no_import_cycles(graph):
    """No module imports (directly or through others) a module that imports it back, packages included: a
    package's ``__init__`` importing its children is fine only if no child imports that ``__init__``."""
    state: dict[str, int] = {}
    stack: list[str] = []
    cycles: list[list[str]] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for dep in sorted(graph[node]):
            if state.get(dep) == 1:
                cycles.append([*stack[stack.index(dep):], dep])
            elif dep not in state:
                visit(dep)
        stack.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    assert not cycles, cycles


def test_no_dynamic_imports_by_string():
    """Modules are imported by name in import statements, not smuggled in with ``__import__``."""
    offenders = [str(p.relative_to(ROOT)) for p in _modules().values() if "__import__(" in p.read_text()]
    assert not offenders, offenders

"""The import graph of logd/ has no circles: data flows one way, and so do imports.

Every import counts: at the top of a module, under ``if TYPE_CHECKING:`` (a circle closed for
the type checker is still two modules that need each other) and inside a function (a circle
taken at run time instead of import time). Read from the source (the AST), nothing imported.
"""

from __future__ import annotations

import ast
from pathlib import Path

LOGD = Path(__file__).resolve().parent.parent / "logd"


def module_name(path: Path, root: Path = LOGD) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, modules: set[str], root: Path = LOGD) -> set[str]:
    """The logd modules ``path`` imports, wherever the import statement stands."""
    found: set[str] = set()
    here = module_name(path, root)
    package = here if path.name == "__init__.py" else here.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: from the package, up level - 1
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            # "from logd import registry" imports the module logd.registry; "from logd.x import y", logd.x
            found.update(f"{base}.{alias.name}" if f"{base}.{alias.name}" in modules else base for alias in node.names)
    return {name for name in found if name in modules and name != here}


def import_graph() -> dict[str, set[str]]:
    files = sorted(LOGD.rglob("*.py"))
    modules = {module_name(path) for path in files}
    return {module_name(path): imports_of(path, modules) for path in files}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan), each sorted."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(graph[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for node in sorted(graph):
        if node not in index:
            visit(node)
    return out


def test_logd_has_no_import_circle() -> None:
    assert circles(import_graph()) == []


def test_a_circle_is_found_wherever_its_imports_stand(tmp_path: Path) -> None:
    """The check itself: a circle closed under TYPE_CHECKING or inside a function is one."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert circles(graph) == [["a", "b", "c"]]
    (tmp_path / "logd").mkdir()
    source = tmp_path / "logd" / "m.py"
    source.write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from logd.pipeline import Batch\n"
                      "def f():\n    from logd import registry\n    import logd.spec\n")
    modules = {"logd.pipeline", "logd.registry", "logd.spec", "logd", "logd.m"}
    assert imports_of(source, modules, tmp_path / "logd") == {"logd.pipeline", "logd.registry", "logd.spec"}

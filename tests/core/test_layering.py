"""The core's layering, checked from the source: no import cycles between its modules and no
module importing another module's ``_private`` names (importing a private *module* is fine).

Imports under ``if TYPE_CHECKING:`` are annotations only and do not count; imports inside
functions do (a late import that hides a cycle is still a cycle). The core is ``streamnb``'s
top-level modules and ``streamnb.operators``; the adapters (grpc, notebook, dask, demo) are
checked by their own tests as they are rewritten.
"""

from __future__ import annotations

import ast
from pathlib import Path

import streamnb

PKG = Path(streamnb.__file__).parent
CORE = [*sorted(PKG.glob("*.py")), *sorted((PKG / "operators").glob("*.py"))]


def _module(path: Path) -> str:
    rel = path.relative_to(PKG.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_package(path: Path) -> bool:
    return path.name == "__init__.py"


def _resolve(path: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = _module(path).split(".")
    if not _is_package(path):
        base = base[:-1]
    if node.level > 1:
        base = base[: -(node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _runtime_imports(tree: ast.Module) -> list[ast.ImportFrom | ast.Import]:
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for stmt in node.body for n in ast.walk(stmt))
    return [
        n
        for n in ast.walk(tree)
        if isinstance(n, ast.Import | ast.ImportFrom) and id(n) not in skip
    ]


def _exists(module: str) -> bool:
    rel = Path(*module.split("."))
    root = PKG.parent
    return (root / rel).with_suffix(".py").exists() or (root / rel / "__init__.py").exists()


def _graph() -> dict[str, set[str]]:
    graph: dict[str, set[str]] = {}
    for path in CORE:
        mod = _module(path)
        deps = graph.setdefault(mod, set())
        for node in _runtime_imports(ast.parse(path.read_text())):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = _resolve(path, node)
                targets.append(base)
                targets += [f"{base}.{a.name}" for a in node.names if _exists(f"{base}.{a.name}")]
            else:
                targets += [a.name for a in node.names]
            deps.update(t for t in targets if t.startswith("streamnb") and t != mod)
    return graph


def test_core_has_no_import_cycles() -> None:
    graph = _graph()
    core = set(graph)

    def visit(mod: str, stack: list[str], done: set[str]) -> None:
        if mod in stack:
            raise AssertionError("import cycle: " + " -> ".join([*stack[stack.index(mod) :], mod]))
        if mod in done or mod not in core:
            return
        for dep in sorted(graph[mod]):
            # a package's __init__ is imported with any of its modules: not a cycle by itself
            if mod.startswith(dep + ".") and dep in core:
                continue
            visit(dep, [*stack, mod], done)
        done.add(mod)

    done: set[str] = set()
    for mod in sorted(core):
        visit(mod, [], done)
    assert "streamnb.operators.base" in core and "streamnb.stream" in core


def test_no_core_module_imports_a_private_name_of_another() -> None:
    bad = []
    for path in CORE:
        for node in _runtime_imports(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            base = _resolve(path, node)
            for alias in node.names:
                private = alias.name.startswith("_") and not alias.name.startswith("__")
                if private and not _exists(f"{base}.{alias.name}"):
                    bad.append(f"{_module(path)}: from {base} import {alias.name}")
    assert not bad, bad


def test_the_checker_sees_a_cycle_and_a_private_import() -> None:
    # the checks above must be able to fail: feed them a cycle and a private import
    tree = ast.parse("from .stream import _Source\nif TYPE_CHECKING:\n    from .x import _y\n")
    nodes = _runtime_imports(tree)
    assert len(nodes) == 1 and isinstance(nodes[0], ast.ImportFrom)
    assert nodes[0].names[0].name == "_Source"
    assert _resolve(PKG / "recovery.py", nodes[0]) == "streamnb.stream"

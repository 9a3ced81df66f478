"""The package's shape, checked from the source: no import cycles inside streamnb, no module
importing another module's ``_private`` names, and the exception tree drawn in
``streamnb/errors.py`` matching the classes."""

from __future__ import annotations

import ast
import importlib
import inspect
import pkgutil
import re
from pathlib import Path

import streamnb
from streamnb.errors import StreamnbError

PKG = Path(streamnb.__file__).parent
GENERATED = PKG / "grpc" / "_generated"


def _modules() -> dict[str, Path]:
    out = {}
    for path in PKG.rglob("*.py"):
        if GENERATED in path.parents:
            continue
        rel = path.relative_to(PKG.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts.pop()
        out[".".join(parts)] = path
    return out


def _is_type_checking(node: ast.If) -> bool:
    t = node.test
    return (isinstance(t, ast.Name) and t.id == "TYPE_CHECKING") or (
        isinstance(t, ast.Attribute) and t.attr == "TYPE_CHECKING"
    )


def _imports(mod: str, path: Path) -> list[tuple[str, list[str], int]]:
    """(imported module, names, line) for every runtime import in the module, late ones too."""
    tree = ast.parse(path.read_text())
    pkg = mod if path.name == "__init__.py" else mod.rpartition(".")[0]
    found: list[tuple[str, list[str], int]] = []

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.If) and _is_type_checking(child):
                for sub in child.orelse:
                    visit(sub)
                continue
            if isinstance(child, ast.ImportFrom):
                if child.level:
                    base = pkg.split(".")
                    base = base[: len(base) - (child.level - 1)]
                    target = ".".join(base + ([child.module] if child.module else []))
                else:
                    target = child.module or ""
                found.append((target, [a.name for a in child.names], child.lineno))
            elif isinstance(child, ast.Import):
                for a in child.names:
                    found.append((a.name, [], child.lineno))
            visit(child)

    visit(tree)
    return found


def _resolve(target: str, names: list[str], modules: dict[str, Path]) -> list[str]:
    """The streamnb modules an import statement depends on."""
    if not target.startswith("streamnb"):
        return []
    deps = []
    for n in names:
        if f"{target}.{n}" in modules:  # ``from pkg import submodule``
            deps.append(f"{target}.{n}")
    if target in modules:
        deps.append(target)
    return deps


def test_no_import_cycles_inside_streamnb() -> None:
    modules = _modules()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    for mod, path in modules.items():
        for target, names, _ in _imports(mod, path):
            for dep in _resolve(target, names, modules):
                # a package's __init__ re-exporting its own modules is not a cycle
                if dep != mod and not mod.startswith(dep + "."):
                    graph[mod].add(dep)
    cycles: list[list[str]] = []
    state: dict[str, int] = {}
    stack: list[str] = []

    def dfs(m: str) -> None:
        state[m] = 1
        stack.append(m)
        for d in sorted(graph[m]):
            if state.get(d) == 1:
                cycles.append([*stack[stack.index(d) :], d])
            elif d not in state:
                dfs(d)
        stack.pop()
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            dfs(m)
    assert not cycles, "import cycles: " + "; ".join(" -> ".join(c) for c in cycles)


def test_no_module_imports_another_modules_private_names() -> None:
    modules = _modules()
    bad = []
    for mod, path in modules.items():
        for target, names, line in _imports(mod, path):
            if not target.startswith("streamnb") or target == mod:
                continue
            for n in names:
                if n.startswith("_") and not n.startswith("__") and f"{target}.{n}" not in modules:
                    bad.append(f"{path.relative_to(PKG.parent)}:{line} imports {target}.{n}")
    assert not bad, "\n".join(bad)


def test_the_checks_above_can_fail(tmp_path: Path) -> None:
    """The source checks see what they are meant to see (on a made-up module)."""
    src = tmp_path / "m.py"
    src.write_text(
        "from typing import TYPE_CHECKING\n"
        "from .buffer import _Channel\n"
        "if TYPE_CHECKING:\n    from .stream import Stream\n"
        "def f():\n    from .recovery import annotate\n"
    )
    found = _imports("streamnb.m", src)
    assert [(t, n) for t, n, _ in found] == [
        ("typing", ["TYPE_CHECKING"]),
        ("streamnb.buffer", ["_Channel"]),
        ("streamnb.recovery", ["annotate"]),
    ]


# -- the exception tree -------------------------------------------------------------------------
def _drawn_tree() -> dict[str, str | None]:
    """name -> parent name, from the tree in errors.py's docstring."""
    doc = inspect.getdoc(importlib.import_module("streamnb.errors")) or ""
    block = doc[doc.index("StreamnbError\n") :].split("\n\n")[0]
    parents: dict[str, str | None] = {}
    stack: list[tuple[int, str]] = []
    for line in block.splitlines():
        m = re.match(r"^([\s│├└─]*)(\w+)", line)
        assert m, line
        depth, name = len(m.group(1)), m.group(2)
        while stack and stack[-1][0] >= depth:
            stack.pop()
        parents[name] = stack[-1][1] if stack else None
        stack.append((depth, name))
    return parents


def _error_classes() -> dict[str, type[BaseException]]:
    """Every StreamnbError subclass defined in streamnb (optional parts that import)."""
    for info in pkgutil.walk_packages(streamnb.__path__, "streamnb."):
        if "_generated" in info.name or info.name.endswith("__main__"):
            continue
        try:
            importlib.import_module(info.name)
        except ImportError:  # an optional extra that is not installed
            continue

    def walk(cls: type[BaseException]) -> list[type[BaseException]]:
        return [cls, *(d for sub in cls.__subclasses__() for d in walk(sub))]

    return {c.__name__: c for c in walk(StreamnbError) if c.__module__.startswith("streamnb")}


def test_error_tree_in_the_docstring_matches_the_classes() -> None:
    drawn = _drawn_tree()
    classes = _error_classes()
    assert set(drawn) == set(classes), (
        f"drawn, not defined: {sorted(set(drawn) - set(classes))}; "
        f"defined, not drawn: {sorted(set(classes) - set(drawn))}"
    )
    for name, parent in drawn.items():
        cls = classes[name]
        family = [b.__name__ for b in cls.__bases__ if issubclass(b, StreamnbError)]
        assert family == ([parent] if parent else []), f"{name}: bases {family}, drawn {parent}"


def test_misuse_errors_are_also_value_or_type_errors() -> None:
    from streamnb.errors import ArgumentTypeError, InvalidArgumentError, UsageError

    assert issubclass(InvalidArgumentError, ValueError)
    assert issubclass(InvalidArgumentError, UsageError)
    assert issubclass(ArgumentTypeError, TypeError) and issubclass(ArgumentTypeError, UsageError)

"""The five source roots merge into one `grpcmesh` namespace, and imports point one way.

Checked statically: every ``import``/``from ... import`` in a file (also those inside
functions) and every ``importlib.import_module("literal")`` call, so a lazy import or a
module loaded by name is seen as well. The rule: api <- sdk <- sidecar, services <- cli;
no service imports another service (shared code lives in ``services.common``), and no
package imports itself round in a circle.
"""

from __future__ import annotations

import ast
import importlib
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SOURCE_ROOTS = ("sdk", "sidecar", "protos", "services", "cli")
# Packages under grpcmesh.services that every service may import: they are not services.
SHARED = frozenset({"common", "cqrs"})


@pytest.mark.parametrize(
    "module",
    [
        "grpcmesh.api.v1.eventstore_pb2_grpc",
        "grpcmesh.sdk",
        "grpcmesh.sidecar",
        "grpcmesh.services",
        "grpcmesh.cli",
    ],
)
def test_importable(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_namespace_has_no_init() -> None:
    for root in SOURCE_ROOTS:
        assert not (ROOT / root / "grpcmesh" / "__init__.py").exists(), (
            f"{root}/grpcmesh/__init__.py breaks PEP 420"
        )


def _module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _is_type_checking(node: ast.AST) -> bool:
    test = node.test if isinstance(node, ast.If) else None
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _nodes(tree: ast.AST, runtime_only: bool) -> Iterator[ast.AST]:
    """Every node, or (``runtime_only``) every node but the bodies of ``if TYPE_CHECKING:``."""
    todo = [tree]
    while todo:
        node = todo.pop()
        yield node
        if runtime_only and isinstance(node, ast.If) and _is_type_checking(node):
            todo.extend(node.orelse)
        else:
            todo.extend(ast.iter_child_nodes(node))


def _imported(tree: ast.AST, module: str, is_package: bool, runtime_only: bool = False) -> Iterator[str]:
    """Names a module imports: statements anywhere in it, and import_module("...") literals."""
    package = module if is_package else module.rpartition(".")[0]
    for node in _nodes(tree, runtime_only):
        if isinstance(node, ast.Import):
            yield from (a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            yield base
            yield from (f"{base}.{a.name}" for a in node.names)  # submodules; non-modules drop out
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute | ast.Name)
            and (node.func.attr if isinstance(node.func, ast.Attribute) else node.func.id) == "import_module"
            and node.args
            and isinstance(node.args[0], ast.Constant)
            and isinstance(node.args[0].value, str)
        ):
            yield node.args[0].value


def _graph(runtime_only: bool = False) -> dict[str, tuple[str, set[str]]]:
    """module -> (source root, grpcmesh modules it imports), for every product module."""
    files: dict[str, tuple[str, Path]] = {}
    for root in SOURCE_ROOTS:
        for path in (ROOT / root / "grpcmesh").rglob("*.py"):
            if "_pb2" not in path.name:
                files[_module_name(path, ROOT / root)] = (root, path)
    graph: dict[str, tuple[str, set[str]]] = {}
    for module, (root, path) in files.items():
        names = _imported(ast.parse(path.read_text()), module, path.name == "__init__.py", runtime_only)
        graph[module] = (root, {n for n in names if n.startswith("grpcmesh.") and n != module})
    return graph


GRAPH = _graph()


def _edges() -> Iterator[tuple[str, str, str]]:
    for module, (root, names) in GRAPH.items():
        for name in names:
            if name in GRAPH or name.startswith("grpcmesh.api"):
                yield root, module, name


@pytest.mark.parametrize(
    ("root", "forbidden"),
    [
        ("sdk", ("grpcmesh.sidecar", "grpcmesh.services", "grpcmesh.cli")),
        ("sidecar", ("grpcmesh.services", "grpcmesh.cli")),
        ("services", ("grpcmesh.sidecar", "grpcmesh.cli")),
        ("protos", ("grpcmesh.sdk", "grpcmesh.sidecar", "grpcmesh.services", "grpcmesh.cli")),
    ],
)
def test_imports_point_one_way(root: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted(
        (m, n)
        for r, m, n in _edges()
        if r == root and any(n == f or n.startswith(f + ".") for f in forbidden)
    )
    assert not bad, f"{root} must not import {forbidden}: {bad}"


def _service(module: str) -> str | None:
    parts = module.split(".")
    return parts[2] if len(parts) > 2 and parts[1] == "services" else None


def test_no_service_imports_another() -> None:
    bad = []
    for _root, module, name in _edges():
        own, other = _service(module), _service(name)
        if own is None or other is None or other == own or other in SHARED:
            continue
        bad.append((module, name))
    assert not bad, f"a service imports another service's modules (share via services.common): {bad}"


def test_shared_service_code_imports_no_service() -> None:
    bad = sorted(
        (m, n) for _r, m, n in _edges() if _service(m) in SHARED and _service(n) not in (None, *SHARED)
    )
    assert not bad, f"shared service code must not depend on a service: {bad}"


def _cycle(graph: dict[str, tuple[str, set[str]]]) -> list[str] | None:
    """One import cycle among the graph's modules, or None (iterative DFS with colours)."""
    edges = {m: sorted(n for n in names if n in graph) for m, (_r, names) in graph.items()}
    colour: dict[str, int] = {}
    for start in sorted(edges):
        if colour.get(start):
            continue
        path: list[str] = [start]
        stack: list[Iterator[str]] = [iter(edges[start])]
        colour[start] = 1
        while stack:
            step = next(stack[-1], None)
            if step is None:
                colour[path.pop()] = 2
                stack.pop()
            elif colour.get(step) == 1:
                return [*path[path.index(step) :], step]
            elif not colour.get(step):
                colour[step] = 1
                path.append(step)
                stack.append(iter(edges[step]))
    return None


def test_no_import_cycles() -> None:
    """Imports that run: a type-only back-reference under ``if TYPE_CHECKING:`` (an h2 stream naming
    its connection's type) never executes, so it cannot make a cycle; the direction rules above
    count those imports too."""
    cycle = _cycle(_graph(runtime_only=True))
    assert cycle is None, f"import cycle: {' -> '.join(cycle or [])}"


def test_checker_sees_lazy_and_by_name_imports() -> None:
    """The checker itself: imports inside functions and import_module literals count."""
    src = (
        "import importlib\n"
        "def f():\n"
        "    from grpcmesh.services.saga import engine\n"
        "    importlib.import_module('grpcmesh.services.commandbus.main')\n"
    )
    names = set(_imported(ast.parse(src), "grpcmesh.sidecar.x", False))
    assert {"grpcmesh.services.saga.engine", "grpcmesh.services.commandbus.main"} <= names


def test_checker_tells_type_only_imports_apart() -> None:
    src = "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from grpcmesh.sdk import a\nfrom grpcmesh.sdk import b\n"
    assert "grpcmesh.sdk.a" in set(_imported(ast.parse(src), "grpcmesh.x.y", False))
    runtime = set(_imported(ast.parse(src), "grpcmesh.x.y", False, runtime_only=True))
    assert "grpcmesh.sdk.a" not in runtime
    assert "grpcmesh.sdk.b" in runtime


def test_checker_finds_a_cycle() -> None:
    graph = {"a": ("x", {"b"}), "b": ("x", {"c"}), "c": ("x", {"a"}), "d": ("x", {"a"})}
    assert _cycle(graph) == ["a", "b", "c", "a"]
    assert _cycle({"a": ("x", {"b"}), "b": ("x", set())}) is None

"""The four source roots merge into one `grpcmesh` namespace, and imports point one way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize(
    "module",
    ["grpcmesh.api.v1.eventstore_pb2_grpc", "grpcmesh.sdk", "grpcmesh.sidecar", "grpcmesh.services"],
)
def test_importable(module: str) -> None:
    assert importlib.import_module(module).__name__ == module


def test_namespace_has_no_init() -> None:
    for root in ("sdk", "sidecar", "protos", "services"):
        assert not (ROOT / root / "grpcmesh" / "__init__.py").exists(), (
            f"{root}/grpcmesh/__init__.py breaks PEP 420"
        )


def _imports(folder: Path) -> set[tuple[str, str]]:
    found: set[tuple[str, str]] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and node.module:
                found.add((str(path.relative_to(ROOT)), node.module))
            elif isinstance(node, ast.Import):
                found.update((str(path.relative_to(ROOT)), a.name) for a in node.names)
    return found


@pytest.mark.parametrize(
    ("root", "forbidden"),
    [
        ("sdk", ("grpcmesh.sidecar", "grpcmesh.services")),
        ("services", ("grpcmesh.sidecar",)),
        ("protos", ("grpcmesh.sdk", "grpcmesh.sidecar", "grpcmesh.services")),
    ],
)
def test_imports_point_one_way(root: str, forbidden: tuple[str, ...]) -> None:
    bad = sorted((f, m) for f, m in _imports(ROOT / root / "grpcmesh") if m.startswith(forbidden))
    assert not bad, f"{root} must not import {forbidden}: {bad}"

"""Generate Python client/server stubs (and .pyi) from a tree of .proto files.

Runs the protoc bundled with grpcio-tools in a subprocess so its diagnostics
can be captured and shown verbatim; include paths cover the well-known types
(google/protobuf/*) and the googleapis annotations (google/api/*) shipped in
installed wheels, so contracts need no vendored third-party .proto files.
"""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

__all__ = ["ProtoGenError", "find_protos", "generate", "include_paths"]


class ProtoGenError(Exception):
    """protoc rejected the input; ``str(err)`` is protoc's own message."""


@dataclass(frozen=True)
class Generated:
    """What one run produced, for callers that want to report it."""

    protos: tuple[Path, ...]
    files: tuple[Path, ...]


def include_paths() -> list[Path]:
    """Directories holding google/protobuf/*.proto and google/api/*.proto."""
    wkt = Path(str(resources.files("grpc_tools") / "_proto"))
    import google.api  # googleapis-common-protos, a grpcio-status dependency

    api_root = Path(next(iter(google.api.__path__))).parent.parent
    return [wkt, api_root]


def find_protos(src: Path) -> list[Path]:
    """All .proto files below ``src``, sorted so output is deterministic."""
    return sorted(p for p in src.rglob("*.proto") if p.is_file())


def generate(src: Path, out: Path, extra_includes: list[Path] | None = None) -> Generated:
    """Compile every .proto below ``src`` into ``out`` (messages, .pyi, gRPC stubs)."""
    src = src.resolve()
    if not src.is_dir():
        raise ProtoGenError(f"{src}: no such directory")
    protos = find_protos(src)
    if not protos:
        raise ProtoGenError(f"{src}: no .proto files found")
    out = out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    before = set(out.rglob("*.py*"))
    includes = [src, *(extra_includes or []), *include_paths()]
    cmd = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        *(f"-I{p}" for p in includes),
        f"--python_out={out}",
        f"--pyi_out={out}",
        f"--grpc_python_out={out}",
        *(str(p.relative_to(src)) for p in protos),
    ]
    proc = subprocess.run(cmd, cwd=src, capture_output=True, text=True, check=False, timeout=120)
    if proc.returncode != 0:
        raise ProtoGenError((proc.stderr or proc.stdout).strip() or f"protoc exited {proc.returncode}")
    produced = tuple(sorted(set(out.rglob("*.py*")) - before | _outputs(out, src, protos)))
    return Generated(protos=tuple(protos), files=produced)


def _outputs(out: Path, src: Path, protos: list[Path]) -> set[Path]:
    names: set[Path] = set()
    for proto in protos:
        stem = out / proto.relative_to(src).with_suffix("")
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            candidate = stem.parent / (stem.name + suffix)
            if candidate.exists():
                names.add(candidate)
    return names

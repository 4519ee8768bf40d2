"""The checked-in stubs must be exactly what `make protos` generates from the .proto files."""

from __future__ import annotations

from pathlib import Path

from grpcmesh.cli.protogen import generate

ROOT = Path(__file__).resolve().parents[2]
PROTOS = ROOT / "protos"


def test_checked_in_stubs_match_fresh_generation(tmp_path: Path) -> None:
    result = generate(PROTOS, tmp_path)
    fresh = {p.relative_to(tmp_path) for p in result.files}
    assert fresh, "protoc produced nothing"
    stale = [
        str(rel)
        for rel in sorted(fresh)
        if not (PROTOS / rel).exists() or (PROTOS / rel).read_bytes() != (tmp_path / rel).read_bytes()
    ]
    assert not stale, f"generated stubs are out of date with the .proto files: {stale}; run `make protos`"


def test_every_contract_is_generated() -> None:
    for name in ("eventstore", "commandbus", "querybus", "saga"):
        for suffix in ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py"):
            assert (PROTOS / "grpcmesh/api/v1" / f"{name}{suffix}").is_file(), f"{name}{suffix} missing"

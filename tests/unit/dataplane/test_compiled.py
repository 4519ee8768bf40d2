"""The sidecar's hot modules run compiled where they were built, and fall back to their sources as a whole."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from grpcmesh.sidecar import compiled

PROBE = (
    "import grpcmesh.sidecar as s, grpcmesh.sidecar.h2.connection as c, grpcmesh.sidecar.proxy as p;"
    "print(s.COMPILED, c.__file__.endswith('.py'), p.__file__.endswith('.py'))"
)


def _probe(**env: str) -> str:
    environ = {k: v for k, v in os.environ.items() if k != "GRPCMESH_PURE_PYTHON"}
    done = subprocess.run(
        [sys.executable, "-c", PROBE], env={**environ, **env}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_pure_python_switch_loads_every_module_from_its_source() -> None:
    assert _probe(GRPCMESH_PURE_PYTHON="1") == "False True True"


@pytest.mark.skipif(
    not any(Path(compiled.__file__).parent.rglob("*.so"))
    and os.environ.get("GRPCMESH_REQUIRE_COMPILED") != "1",
    reason="not compiled here (no C compiler at install time)",
)
def test_compiled_modules_are_used_where_built() -> None:
    assert _probe() == "True False False"


def test_a_source_edited_after_its_build_is_noticed(tmp_path: Path) -> None:
    (tmp_path / "h2").mkdir()
    (tmp_path / "h2" / "frames.cpython-311-x86_64-linux-gnu.so").write_bytes(b"")
    source = tmp_path / "h2" / "frames.py"
    source.write_text("")
    assert compiled.stale(tmp_path) == []
    later = source.stat().st_mtime + 60
    os.utime(source, (later, later))
    assert compiled.stale(tmp_path) == ["h2/frames.py"]

"""The sidecar's HTTP/2 data plane: frames, flow control and HPACK, for relaying gRPC streams.

``frames`` (layout and builders), ``hpack_in`` / ``hpack_out`` (header
compression), ``connection`` (one connection: reading, writing, windows),
``server`` / ``client`` (accepting and dialling sides, connection pools) and
``grpcwire`` (what gRPC puts on top: timeouts, statuses, message prefixes).
The proxy core that joins two streams is :mod:`grpcmesh.sidecar.proxy`.

Every ``pip install`` compiles these modules with mypyc where a C compiler is
present (``scripts/compile_dataplane.py``); the extensions sit next to the
sources and Python prefers them. The sources are used instead - all of them,
since compiled modules call each other directly - when
``GRPCMESH_PURE_PYTHON=1`` (to debug or profile, and to test the fallback) or
when a source is newer than its extension (edited since the last build:
``make compiled`` rebuilds). :data:`COMPILED` says which one runs.
"""

from __future__ import annotations

import importlib.abc
import importlib.machinery
import importlib.util
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from types import ModuleType

_HERE = Path(__file__).parent
_SLACK = 2.0  # seconds: an installer writes a source and its extension close together


def _stale(here: Path) -> list[str]:
    """Sources edited after their extension was built."""
    stale = []
    for ext in here.glob("*.so"):
        source = here / (ext.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > ext.stat().st_mtime + _SLACK:
            stale.append(source.name)
    return stale


class _SourcesOnly(importlib.abc.MetaPathFinder):
    """Finds this package's modules as ``.py`` sources, never as extensions."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        package, _, name = fullname.rpartition(".")
        source = _HERE / f"{name}.py"
        if package != __name__ or not source.exists():
            return None
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> bool:
    has_extensions = any(_HERE.glob("*.so"))
    stale = _stale(_HERE) if has_extensions else []
    if not has_extensions or os.environ.get("GRPCMESH_PURE_PYTHON") == "1" or stale:
        if stale:
            print(f"grpcmesh: {', '.join(stale)} changed since compiled; using sources", file=sys.stderr)
        if has_extensions:
            sys.meta_path.insert(0, _SourcesOnly())
        return False
    return True


COMPILED: bool = _choose()

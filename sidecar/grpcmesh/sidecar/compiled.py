"""Compiled or pure: which form of the sidecar's hot modules this process runs.

Every ``pip install`` compiles the HTTP/2 layer and the relay (``h2/``,
``proxy``, ``hop``, ``listener``, ``outbound``, ``inbound``, ``telemetry``,
``spans``, ``router``) with mypyc where a C compiler is present
(``scripts/compile_dataplane.py``); the extensions sit next to the sources
and Python prefers them. The sources are used instead - all of them, since
compiled modules call each other directly - when ``GRPCMESH_PURE_PYTHON=1``
(to debug or profile, and to test the fallback) or when a source is newer
than its extension (edited since the last build: ``make compiled`` rebuilds).
This module is never compiled itself: the package imports it first.
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

__all__ = ["COMPILED", "stale"]

_PACKAGE = "grpcmesh.sidecar"
_HERE = Path(__file__).parent
_SLACK = 2.0  # seconds: an installer writes a source and its extension close together


def _extensions(here: Path) -> list[Path]:
    return [p for p in here.rglob("*.so") if "__mypyc" not in p.name]


def stale(here: Path) -> list[str]:
    """Sources under ``here`` edited after their extension was built."""
    found = []
    for ext in _extensions(here):
        source = ext.with_name(ext.name.split(".", 1)[0] + ".py")
        if source.exists() and source.stat().st_mtime > ext.stat().st_mtime + _SLACK:
            found.append(str(source.relative_to(here)))
    return sorted(found)


class _SourcesOnly(importlib.abc.MetaPathFinder):
    """Finds the package's compiled modules as their ``.py`` sources instead."""

    def __init__(self, compiled: set[str]) -> None:
        self._compiled = compiled

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> importlib.machinery.ModuleSpec | None:
        if fullname not in self._compiled:
            return None
        source = _HERE.joinpath(*fullname.split(".")[2:]).with_suffix(".py")
        return importlib.util.spec_from_file_location(fullname, source)


def _choose() -> bool:
    extensions = _extensions(_HERE)
    if not extensions:
        return False
    edited = stale(_HERE)
    if os.environ.get("GRPCMESH_PURE_PYTHON") != "1" and not edited:
        return True
    if edited:
        print(f"grpcmesh: {', '.join(edited)} changed since compiled: running sources", file=sys.stderr)
    names = {
        ".".join((_PACKAGE, *p.relative_to(_HERE).with_name(p.name.split(".", 1)[0]).parts))
        for p in extensions
    }
    sys.meta_path.insert(0, _SourcesOnly(names))
    return False


COMPILED: bool = _choose()

"""Build hook: every install (``pip install``, editable or not) compiles the sidecar's HTTP/2 layer.

Why a hook and not a separate step: the compiled layer is what the sidecar's
benchmarks and users' figures assume, so it must come with a plain
``pip install`` on a fresh machine. Where there is no C compiler the package
installs pure Python with a warning (``GRPCMESH_REQUIRE_COMPILED=1`` makes that
an error, as CI does); ``GRPCMESH_PURE_PYTHON=1`` skips compiling. The work is
in ``scripts/compile_dataplane.py``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface


def _compiler(root: Path) -> ModuleType:
    path = root / "scripts" / "compile_dataplane.py"
    spec = importlib.util.spec_from_file_location("compile_dataplane", path)
    if spec is None or spec.loader is None:
        raise RuntimeError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class CompileDataPlane(BuildHookInterface):  # type: ignore[misc]
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel" or os.environ.get("GRPCMESH_PURE_PYTHON") == "1":
            return
        root = Path(self.root)
        compiler = _compiler(root)
        try:
            built: list[Path] = compiler.compile_inplace(root)
        except Exception as err:
            if os.environ.get("GRPCMESH_REQUIRE_COMPILED") == "1":
                raise
            print(f"grpcmesh: HTTP/2 layer not compiled, so pure Python: {err}", file=sys.stderr)
            return
        if version == "editable":  # the source roots are on sys.path and the extensions sit in them
            return
        build_data["pure_python"] = False
        build_data["infer_tag"] = True
        base = root / compiler.SOURCE_ROOT
        for path in built:  # git-ignored files, which the wheel would otherwise leave out
            build_data["force_include"][str(path)] = str(path.relative_to(base))

"""Compile the sidecar's HTTP/2 layer and relay with mypyc, next to their sources.

Why: the frame reader, the HPACK codec, the stream state machine and the
relay run for every frame and call a sidecar carries; compiled by mypyc (from
the very type hints ``mypy --strict`` checks) the HTTP/2 layer costs a third
of the CPU it costs interpreted, and the sidecar's cost per call is what users
compare with Envoy's and nginx's. Nothing changes in the sources: the
pure-Python modules stay importable and tested (``GRPCMESH_PURE_PYTHON=1``,
see ``grpcmesh/sidecar/compiled.py``).

Used by the build hook (``hatch_build.py``: every ``pip install``, editable
or not) and by ``make compiled`` after a source changes. Needs a C compiler
and the Python headers; without them the build hook warns and installs the
pure-Python package.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from pathlib import Path

SOURCE_ROOT = "sidecar"  # the source root holding grpcmesh/sidecar
PACKAGE = Path("grpcmesh/sidecar")
# The relay's modules besides h2/*: what every call runs through. Not compiled: startup, config,
# admin pages, and `compiled` (it decides which form runs).
RELAY = ("hop", "inbound", "listener", "outbound", "proxy", "router", "spans", "telemetry")
GROUP = "grpcmesh.sidecar.dataplane"  # one shared library, so calls between the modules stay native

_SETUP = """
import sys
from mypyc.build import mypycify
from setuptools import setup
target, *paths = sys.argv[1:]
sys.argv[1:] = ["build_ext", "--inplace", "--build-temp", target + "/temp", "--build-lib", target + "/lib"]
setup(
    name="grpcmesh-h2-compiled",
    ext_modules=mypycify(
        ["--config-file", target + "/mypy.ini", "--cache-dir", target + "/mypy", *paths],
        opt_level="3",
        group_name={group!r},
        target_dir=target,
    ),
)
"""


# The type check mypyc compiles from. Installed packages are left out (no_site_packages), so a build
# in pip's isolated environment (hatchling, mypy, setuptools and nothing else) and one in a developer's
# venv see the same types and compile the same code: third-party objects are Any to the compiled
# modules. Strictness is `make typecheck`'s job (pyproject's [tool.mypy]), not the compiler's: the
# imported, not compiled, modules are checked silently. A compiled class may not subclass what
# the compiler cannot see (disallow_subclassing_any): it would build, and crash at run time.
_MYPY_CONFIG = """
[mypy]
python_version = 3.11
explicit_package_bases = True
namespace_packages = True
no_site_packages = True
ignore_missing_imports = True
follow_imports = silent
disallow_subclassing_any = True
"""


# Not compiled in h2/: the package's __init__, and the limits config (it is pickled into
# `--workers` processes, and a compiled frozen dataclass does not unpickle).
H2_PURE = ("__init__.py", "limits.py")


def modules(root: Path) -> list[str]:
    """The modules compiled (paths relative to the source root): h2/* but H2_PURE, and RELAY."""
    h2 = root / SOURCE_ROOT / PACKAGE / "h2"
    found = [str(PACKAGE / "h2" / p.name) for p in h2.glob("*.py") if p.name not in H2_PURE]
    return sorted(found + [str(PACKAGE / f"{name}.py") for name in RELAY])


def compiled_files(root: Path) -> list[Path]:
    """The extension files a build leaves in the source tree (git-ignored)."""
    return sorted((root / SOURCE_ROOT / PACKAGE).rglob("*.so"))


def clean(root: Path) -> None:
    for path in compiled_files(root):
        path.unlink()


def compile_inplace(root: Path) -> list[Path]:
    """Build the extensions into the source tree; returns their paths. Raises on any failure."""
    clean(root)
    env = dict(os.environ, MYPYPATH=os.pathsep.join(str(root / r) for r in ("sdk", SOURCE_ROOT)))
    with tempfile.TemporaryDirectory(prefix="grpcmesh-mypyc-") as target:
        Path(target, "mypy.ini").write_text(_MYPY_CONFIG)
        done = subprocess.run(
            [sys.executable, "-c", _SETUP.format(group=GROUP), target, *modules(root)],
            cwd=root / SOURCE_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            check=False,
        )
    if done.returncode:
        raise RuntimeError(f"mypyc failed:\n{done.stdout[-4000:]}")
    return compiled_files(root)


def fresh(root: Path) -> bool:
    """Every module has an extension built after its source was last changed."""
    base = root / SOURCE_ROOT
    built = {p.with_name(p.name.split(".", 1)[0]): p.stat().st_mtime for p in compiled_files(root)}
    if len([p for p in built if "__mypyc" not in p.name]) != len(modules(root)):
        return False  # a module left the list (or joined it)
    for module in modules(root):
        source = base / module
        ext_time = built.get(source.with_suffix(""))
        if ext_time is None or source.stat().st_mtime > ext_time:
            return False
    return True


def main() -> int:
    root = Path(__file__).resolve().parent.parent
    args = sys.argv[1:]
    if args == ["--clean"]:
        clean(root)
        return 0
    if args == ["--if-stale"] and fresh(root):
        return 0
    try:
        built = compile_inplace(root)
    except (RuntimeError, OSError) as err:
        if os.environ.get("GRPCMESH_REQUIRE_COMPILED") == "1" or args != ["--if-stale"]:
            raise
        print(f"grpcmesh: HTTP/2 layer left as pure Python: {err}", file=sys.stderr)
        return 0
    for path in built:
        print(path.relative_to(root))
    return 0


if __name__ == "__main__":
    sys.exit(main())

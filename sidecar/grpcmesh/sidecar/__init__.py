"""grpcmesh.sidecar: the per-service proxy process (the command line is grpcmesh.cli).

Its hot modules run compiled where they were built: see :mod:`grpcmesh.sidecar.compiled`.
"""

from grpcmesh.sidecar.compiled import COMPILED

__all__ = ["COMPILED"]

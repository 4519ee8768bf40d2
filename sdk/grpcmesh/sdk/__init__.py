"""grpcmesh.sdk: everything a Python process needs to be part of the mesh."""

from grpcmesh.sdk.errors import MeshError, from_rpc_error, rich_status
from grpcmesh.sdk.server import Server, Servicer, serve

__all__ = ["MeshError", "Server", "Servicer", "from_rpc_error", "rich_status", "serve"]

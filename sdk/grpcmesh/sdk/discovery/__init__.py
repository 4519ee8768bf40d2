"""Service discovery: a ``Resolver`` protocol and its implementations.

Policies (balancers, the sidecar's router) depend only on :class:`Resolver`
and :class:`Endpoint`; which registry answers is chosen once at the edge.
"""

from grpcmesh.sdk.discovery.base import Endpoint, Resolution, ResolveError, Resolver
from grpcmesh.sdk.discovery.memory import MemoryResolver

__all__ = ["Endpoint", "MemoryResolver", "Resolution", "ResolveError", "Resolver"]

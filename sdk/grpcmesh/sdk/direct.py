"""Direct mode: resolve and balance in-process instead of through a sidecar (pending)."""

from __future__ import annotations

from typing import Any

from grpcmesh.sdk.channel import Transport

__all__ = ["ClusterTransport"]


def ClusterTransport(discovery: Any, policy: Any) -> Transport:
    """Not built yet."""
    raise NotImplementedError("direct mode is not available yet")

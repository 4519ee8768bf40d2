"""How a service reaches the event store: directly by address, or through its local sidecar."""

from __future__ import annotations

from grpcmesh.sdk import AsyncMeshClient

__all__ = ["EVENTSTORE", "eventstore_client"]

EVENTSTORE = "eventstore"  # the service name the event store is resolved by


def eventstore_client(service: str, eventstore: str | None) -> AsyncMeshClient:
    """A client that reaches the event store directly (``host:port[,host:port]``) or via the sidecar.

    No default deadline: subscriptions are long-lived and dispatches inherit the
    deadline of the call being served.
    """
    if eventstore:
        addresses = [a.strip() for a in eventstore.split(",") if a.strip()]
        return AsyncMeshClient(service, discovery={EVENTSTORE: addresses}, timeout=None)
    return AsyncMeshClient(service, timeout=None)

"""The command bus: Dispatch → handler → event-sourced aggregate → Append(exact revision).

Layers: ``service`` (gRPC) → ``dispatcher`` (load, decide, append, retry, idempotency)
→ ``store`` (the event store through the SDK client, :mod:`grpcmesh.services.common`)
and the pure domain in :mod:`grpcmesh.services.cqrs`.
"""

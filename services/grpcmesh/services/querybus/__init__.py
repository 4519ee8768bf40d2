"""The query bus: projectors keep SQLite read models current; Query routes by payload type URL.

Layers: ``service`` (gRPC, read-your-writes wait) → ``projector`` (Subscribe to the
event store, catch-up + live, reconnect) → ``readstore`` (SQLite; read-model change
and checkpoint committed in one transaction). What an application declares
(projections and query handlers) is :mod:`grpcmesh.services.cqrs.queries`.
"""

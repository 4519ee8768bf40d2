"""The event store: durable ordered streams with optimistic concurrency, served over gRPC.

Layers (imports point down): ``service`` (gRPC) → ``subscriptions`` (catch-up + live)
→ ``storage`` (the :class:`~grpcmesh.services.eventstore.storage.base.Storage` port and
its SQLite / PostgreSQL adapters) → ``domain`` (plain types, no I/O).
"""

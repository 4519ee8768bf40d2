"""grpcmesh.services: the event store, command/query buses, saga orchestrator and gateway."""

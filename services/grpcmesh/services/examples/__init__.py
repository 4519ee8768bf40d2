"""Example applications built on the grpcmesh services (used by the demo and e2e tests)."""

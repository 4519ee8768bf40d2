"""grpcmesh.sidecar: the per-service proxy process (the command line is grpcmesh.cli)."""

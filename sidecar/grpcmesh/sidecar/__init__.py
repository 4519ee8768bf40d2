"""grpcmesh.sidecar: the per-service proxy process and the ``grpcmesh`` command line."""

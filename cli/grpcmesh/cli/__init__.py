"""The ``grpcmesh`` command line: the composition root over sdk, sidecar and services."""

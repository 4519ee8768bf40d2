"""The sidecar's HTTP/2 data plane: frames, flow control and HPACK, for relaying gRPC streams.

``frames`` (layout and builders), ``hpack_in`` / ``hpack_out`` (header
compression), ``connection`` (one connection: reading, writing, windows),
``server`` / ``client`` (accepting and dialling sides, connection pools) and
``grpcwire`` (what gRPC puts on top: timeouts, statuses, message prefixes).
The proxy core that joins two streams is :mod:`grpcmesh.sidecar.proxy`.
Compiled where built: see :mod:`grpcmesh.sidecar.compiled`.
"""

"""The API gateway: an HTTP/JSON edge that transcodes to gRPC calls through the mesh.

Routes come from ``google.api.http`` annotations of any registered descriptor set
(grpc-gateway / Envoy gRPC-JSON transcoder style); each request passes auth (JWT),
a per-client token bucket, a response cache for side-effect-free GETs, and its
gRPC status is mapped back to an HTTP status with a JSON error body.
"""

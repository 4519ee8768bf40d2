"""A sidecar in front of an app whose reflection service answers garbage starts and serves.

Reflection only teaches the sidecar method kinds and service names; an answer that does
not decode, or decodes into a descriptor that makes no sense, is logged and ignored."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator, Callable
from typing import Any

import grpc
import pytest
from grpc_reflection.v1alpha import reflection_pb2

from grpcmesh.sidecar.app import Sidecar
from tests.support.echo import SERVICE, Echo
from tests.support.inprocess import sidecar_config

REFLECTION = "grpc.reflection.v1alpha.ServerReflection"


def listing_then(descriptor: bytes) -> Callable[[bytes], bytes]:
    """Lists the echo service, then answers the descriptor request with ``descriptor``."""

    def answer(request: bytes) -> bytes:
        req = reflection_pb2.ServerReflectionRequest.FromString(request)
        if req.HasField("list_services"):
            listing = reflection_pb2.ListServiceResponse(
                service=[reflection_pb2.ServiceResponse(name=SERVICE)]
            )
            return reflection_pb2.ServerReflectionResponse(list_services_response=listing).SerializeToString()
        files = reflection_pb2.FileDescriptorResponse(file_descriptor_proto=[descriptor])
        return reflection_pb2.ServerReflectionResponse(file_descriptor_response=files).SerializeToString()

    return answer


ANSWERS: dict[str, Callable[[bytes], bytes]] = {
    "undecodable answer": lambda _request: b"\xff\xff\xff\xff\x0f",
    "undecodable descriptor": listing_then(b"\x0a\xff\xff\xff"),
    "descriptor of nonsense": listing_then(b"\x32\x05\x0a\x03\xff\xfe\xfd"),
    "empty answer": lambda _request: b"",
}


def corrupt_reflection(answer: Callable[[bytes], bytes]) -> grpc.GenericRpcHandler:
    async def info(requests: AsyncIterator[bytes], _context: Any) -> AsyncIterator[bytes]:
        async for request in requests:
            yield answer(request)

    handler = grpc.stream_stream_rpc_method_handler(info)  # raw bytes both ways
    return grpc.method_handlers_generic_handler(REFLECTION, {"ServerReflectionInfo": handler})


@pytest.mark.parametrize("kind", sorted(ANSWERS))
async def test_sidecar_serves_in_front_of_a_corrupt_reflection_service(kind: str) -> None:
    app = grpc.aio.server()
    app.add_generic_rpc_handlers((Echo().handler(), corrupt_reflection(ANSWERS[kind])))
    port = app.add_insecure_port("127.0.0.1:0")
    await app.start()
    sidecar = Sidecar(dataclasses.replace(sidecar_config("echo"), app=f"127.0.0.1:{port}"))
    try:
        await sidecar.start()
        assert sidecar.ready
        async with grpc.aio.insecure_channel(sidecar.cfg.inbound) as channel:
            answer = await channel.unary_unary(f"/{SERVICE}/Unary")(b"through", timeout=10)
        assert answer == b"through"
    finally:
        await sidecar.drain()
        await app.stop(0)

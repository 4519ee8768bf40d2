"""A JSON "hop" service for SDK chain tests: A → B → C over real sockets.

Each hop records what it saw (trace id, request id, time left before its
deadline), then either fails (with a rich BadRequest detail), streams, or
calls the next hop through its own ``AsyncMeshClient`` — the same way a real
service calls another one inside its handler. No checked-in protos: a generic
handler with JSON (de)serializers and a hand-written stub class shaped like a
generated one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any

import grpc
from opentelemetry import trace

from grpcmesh.sdk import AsyncMeshClient, Servicer, bad_request, current_request_id, rich_status
from grpcmesh.sdk.interceptors import time_remaining

SERVICE = "chain.v1.Hop"
log = logging.getLogger("tests.chain")


def dumps(obj: Any) -> bytes:
    return json.dumps(obj).encode()


def loads(raw: bytes) -> Any:
    return json.loads(raw)


class HopStub:
    """Shaped like a generated stub: binds multicallables on the channel it is given."""

    def __init__(self, channel: Any) -> None:
        self.Call = channel.unary_unary(
            f"/{SERVICE}/Call", request_serializer=dumps, response_deserializer=loads
        )
        self.Get = channel.unary_unary(
            f"/{SERVICE}/Get", request_serializer=dumps, response_deserializer=loads
        )
        self.Count = channel.unary_stream(
            f"/{SERVICE}/Count", request_serializer=dumps, response_deserializer=loads
        )
        self.Echo = channel.stream_stream(
            f"/{SERVICE}/Echo", request_serializer=dumps, response_deserializer=loads
        )


@dataclass
class Seen:
    hop: str
    trace_id: str
    request_id: str | None
    remaining: float | None
    metadata: dict[str, str] = field(default_factory=dict)


class Hop:
    """One service of the chain; ``client`` (set after start) calls the next hop."""

    def __init__(self, name: str, seen: list[Seen]) -> None:
        self.name = name
        self.seen = seen
        self.client: AsyncMeshClient | None = None
        self.unavailable_first = 0  # Get: answer UNAVAILABLE this many times first

    def _record(self, context: grpc.aio.ServicerContext[Any, Any]) -> None:
        ctx = trace.get_current_span().get_span_context()
        md = {k: v for k, v in context.invocation_metadata() or () if isinstance(v, str)}
        self.seen.append(
            Seen(self.name, format(ctx.trace_id, "032x"), current_request_id(), time_remaining(), md)
        )
        log.info("hop %s handling", self.name)

    async def call(
        self, request: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> dict[str, Any]:
        self._record(context)
        if request.get("fail") == self.name:
            await context.abort_with_status(
                rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "amount must be positive",
                    [bad_request({"amount": "must be > 0, got -5"})],
                )
            )
        if request.get("sleep"):
            await asyncio.sleep(float(request["sleep"]))
        hops = list(request.get("hops", []))
        if not hops:
            return {"path": [self.name]}
        assert self.client is not None, "hop has no client"
        stub = self.client.stub(HopStub, target=hops[0])
        if request.get("gap"):
            await asyncio.sleep(float(request["gap"]))
        reply = await stub.Call({**request, "hops": hops[1:]})
        return {"path": [self.name, *reply["path"]]}

    async def get(
        self, request: dict[str, Any], context: grpc.aio.ServicerContext[Any, Any]
    ) -> dict[str, Any]:
        self._record(context)
        if self.unavailable_first > 0:
            self.unavailable_first -= 1
            await context.abort(grpc.StatusCode.UNAVAILABLE, f"{self.name} warming up")
        return {"hop": self.name}

    async def count(self, request: dict[str, Any], context: Any) -> AsyncIterator[dict[str, Any]]:
        self._record(context)
        for i in range(int(request.get("n", 3))):
            yield {"i": i, "hop": self.name}
        if request.get("fail") == self.name:
            await context.abort(grpc.StatusCode.NOT_FOUND, "no more items")

    async def echo(self, requests: AsyncIterator[Any], context: Any) -> AsyncIterator[dict[str, Any]]:
        self._record(context)
        async for item in requests:
            yield {"echo": item, "hop": self.name}

    def servicer(self) -> Servicer:
        handlers = {
            "Call": grpc.unary_unary_rpc_method_handler(
                self.call, request_deserializer=loads, response_serializer=dumps
            ),
            "Get": grpc.unary_unary_rpc_method_handler(
                self.get, request_deserializer=loads, response_serializer=dumps
            ),
            "Count": grpc.unary_stream_rpc_method_handler(
                self.count, request_deserializer=loads, response_serializer=dumps
            ),
            "Echo": grpc.stream_stream_rpc_method_handler(
                self.echo, request_deserializer=loads, response_serializer=dumps
            ),
        }
        generic = grpc.method_handlers_generic_handler(SERVICE, handlers)

        def add(_impl: Any, server: grpc.aio.Server) -> None:
            return server.add_generic_rpc_handlers((generic,))

        return (self, add, SERVICE)


@dataclass
class Chain:
    """Three running hops, their shared registry, and what each hop saw."""

    hops: dict[str, Hop]
    servers: dict[str, Any]
    resolver: Any
    seen: list[Seen]
    edge_sidecar: str | None = None  # sidecar mode: the outbound address the edge calls through

    def address(self, name: str) -> str:
        return str(self.servers[name].address)


@contextlib.asynccontextmanager
async def running_chain(
    names: tuple[str, ...] = ("a", "b", "c"),
    *,
    tracer_provider: trace.TracerProvider | None = None,
    client: Callable[[str, Any], AsyncMeshClient] | None = None,
) -> AsyncIterator[Chain]:
    """Starts one :class:`Server` per hop (port 0) and gives each hop a client.

    ``client(name, resolver)`` builds a hop's client; the default is direct mode
    over an in-memory registry holding every hop's address.
    """
    from grpcmesh.sdk import Server
    from grpcmesh.sdk.discovery import Endpoint, MemoryResolver

    seen: list[Seen] = []
    resolver = MemoryResolver()
    hops = {n: Hop(n, seen) for n in names}
    servers = {n: Server([h.servicer()], name=n, tracer_provider=tracer_provider) for n, h in hops.items()}
    make = client or (
        lambda name, res: AsyncMeshClient(service=name, discovery=res, tracer_provider=tracer_provider)
    )
    try:
        for name, server in servers.items():
            await server.start()
            await resolver.set(name, [Endpoint("127.0.0.1", server.port, id=name)])
        for name, hop in hops.items():
            hop.client = make(name, resolver)
        yield Chain(hops, servers, resolver, seen)
    finally:
        for hop in hops.values():
            if hop.client is not None:
                await hop.client.close()
        for server in servers.values():
            await server.stop(grace=0)

"""A tiny echo service for sidecar tests and benchmarks: all four call kinds, raw bytes.

No checked-in protos: a generic handler with bytes in/out, plus a descriptor
built at run time (messages are ``google.protobuf.BytesValue``) so server
reflection tells the sidecar each method's kind and idempotency level.

Behaviour is steered per call by metadata:
  x-echo-fail: CODE        abort with that status (x-echo-rich: 1 adds a BadRequest detail)
  x-echo-delay-ms: N       sleep before answering
  x-echo-count: N          server-stream / bidi: messages per request (default 3)
  x-echo-pushback: A,B,..  the n-th call carrying the same x-echo-key fails UNAVAILABLE with
                           grpc-retry-pushback-ms set to the n-th value; later calls succeed
``Ping`` is a bare echo (no metadata, no counters): the benchmark baseline.
and per process by the ``Control`` method (JSON: {"fail": "UNAVAILABLE"|null}).
``Stats`` returns JSON counters: calls per method, cancellations, the last metadata seen.

Run: ``python -m tests.support.echo --port N [--name a]``; prints ``echo listening on``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import time
from collections import Counter, defaultdict
from collections.abc import AsyncIterator
from typing import Any

import grpc
from google.protobuf import descriptor_pb2, descriptor_pool, wrappers_pb2
from grpc_health.v1 import _async as health_aio
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

SERVICE = "echo.v1.Echo"
NAME = os.environ.get("ECHO_NAME", "echo")

# method → (client_streaming, server_streaming, idempotency level)
IDEM = descriptor_pb2.MethodOptions.IDEMPOTENT
NOSIDE = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS
UNK = descriptor_pb2.MethodOptions.IDEMPOTENCY_UNKNOWN
METHODS: dict[str, tuple[bool, bool, int]] = {
    "Unary": (False, False, IDEM),
    "Ping": (False, False, NOSIDE),
    "Create": (False, False, UNK),
    "ServerStream": (False, True, NOSIDE),
    "ClientStream": (True, False, UNK),
    "Bidi": (True, True, UNK),
    "Wait": (False, False, UNK),
    "WaitStream": (True, True, UNK),
    "Stats": (False, False, NOSIDE),
    "Control": (False, False, UNK),
}


def build_pool() -> descriptor_pool.DescriptorPool:
    """A pool holding echo.proto (built in code) and its BytesValue dependency."""
    pool = descriptor_pool.DescriptorPool()
    wrappers = descriptor_pb2.FileDescriptorProto()
    wrappers_pb2.DESCRIPTOR.CopyToProto(wrappers)
    pool.Add(wrappers)
    fdp = descriptor_pb2.FileDescriptorProto(
        name="echo/v1/echo.proto",
        package="echo.v1",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    svc = fdp.service.add(name="Echo")
    for name, (cs, ss, level) in METHODS.items():
        m = svc.method.add(
            name=name,
            input_type=".google.protobuf.BytesValue",
            output_type=".google.protobuf.BytesValue",
            client_streaming=cs,
            server_streaming=ss,
        )
        m.options.idempotency_level = level  # type: ignore[assignment]
    pool.Add(fdp)
    return pool


class Echo:
    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()
        self.cancelled = 0
        self.fail: str | None = None
        self.last_metadata: dict[str, str] = {}
        self.arrivals: defaultdict[str, list[float]] = defaultdict(list)  # x-echo-key → call times

    def _meta(self, ctx: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
        md = {k: v if isinstance(v, str) else v.hex() for k, v in ctx.invocation_metadata() or ()}
        self.last_metadata = md
        return md

    async def _prelude(self, method: str, ctx: grpc.aio.ServicerContext[Any, Any]) -> dict[str, str]:
        self.calls[method] += 1
        md = self._meta(ctx)
        await ctx.send_initial_metadata((("x-echo-served-by", NAME), ("x-echo-method", method)))
        if "x-echo-key" in md:
            seen = self.arrivals[md["x-echo-key"]]
            seen.append(time.monotonic())
            pushbacks = md.get("x-echo-pushback", "").split(",")
            if len(seen) <= len(pushbacks) and pushbacks[0]:
                pushback = pushbacks[len(seen) - 1]
                await ctx.abort(
                    grpc.StatusCode.UNAVAILABLE, "pushback", (("grpc-retry-pushback-ms", pushback),)
                )
        if "x-echo-delay-ms" in md:
            await asyncio.sleep(int(md["x-echo-delay-ms"]) / 1000.0)
        fail = md.get("x-echo-fail") or (self.fail if method in ("Unary", "Create") else None)
        if fail:
            code = grpc.StatusCode[fail]
            if md.get("x-echo-rich") == "1":
                from grpcmesh.sdk.errors import bad_request, rich_status

                ctx.set_trailing_metadata((("x-echo-trailer", "failed"),))
                await ctx.abort_with_status(
                    rich_status(code, "echo was told to fail", [bad_request({"name": "bad"})])
                )
            await ctx.abort(code, f"echo {NAME} was told to fail", (("x-echo-trailer", "failed"),))
        ctx.set_trailing_metadata((("x-echo-trailer", "ok"), ("x-echo-served-by", NAME)))
        return md

    async def unary(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await self._prelude("Unary", ctx)
        return req

    async def ping(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        """The benchmark baseline: a bare echo, no metadata, no counters."""
        return req

    async def create(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await self._prelude("Create", ctx)
        return req

    async def server_stream(
        self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        md = await self._prelude("ServerStream", ctx)
        for i in range(int(md.get("x-echo-count", "3"))):
            yield req + str(i).encode()

    async def client_stream(
        self, reqs: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
    ) -> bytes:
        await self._prelude("ClientStream", ctx)
        return b"|".join([r async for r in reqs])

    async def bidi(
        self, reqs: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        md = await self._prelude("Bidi", ctx)
        n = int(md.get("x-echo-count", "1"))
        async for r in reqs:
            for _ in range(n):
                yield r

    async def wait(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        await self._prelude("Wait", ctx)
        try:
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise
        return req

    async def wait_stream(
        self, reqs: AsyncIterator[bytes], ctx: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[bytes]:
        await self._prelude("WaitStream", ctx)
        try:
            async for r in reqs:
                yield r
            await asyncio.sleep(3600)
        except asyncio.CancelledError:
            self.cancelled += 1
            raise

    async def stats(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        body = {
            "name": NAME,
            "calls": dict(self.calls),
            "cancelled": self.cancelled,
            "metadata": self.last_metadata,
            "arrivals": self.arrivals,
        }
        return json.dumps(body).encode()

    async def control(self, req: bytes, ctx: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        self.fail = json.loads(req or b"{}").get("fail")
        return b"{}"

    def handler(self) -> grpc.GenericRpcHandler:
        u, us, su, ss = (
            grpc.unary_unary_rpc_method_handler,
            grpc.unary_stream_rpc_method_handler,
            grpc.stream_unary_rpc_method_handler,
            grpc.stream_stream_rpc_method_handler,
        )
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Unary": u(self.unary),
                "Ping": u(self.ping),
                "Create": u(self.create),
                "ServerStream": us(self.server_stream),
                "ClientStream": su(self.client_stream),
                "Bidi": ss(self.bidi),
                "Wait": u(self.wait),
                "WaitStream": ss(self.wait_stream),
                "Stats": u(self.stats),
                "Control": u(self.control),
            },
        )


async def start_echo(port: int = 0, host: str = "127.0.0.1") -> tuple[grpc.aio.Server, int, Echo]:
    echo = Echo()
    server = grpc.aio.server(
        options=[("grpc.max_receive_message_length", 64 << 20), ("grpc.max_send_message_length", 64 << 20)]
    )
    server.add_generic_rpc_handlers((echo.handler(),))
    health = health_aio.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health, server)
    reflection.enable_server_reflection([SERVICE, reflection.SERVICE_NAME], server, pool=build_pool())
    bound = server.add_insecure_port(f"{host}:{port}")
    await server.start()
    await health.set("", health_pb2.HealthCheckResponse.SERVING)
    await health.set(SERVICE, health_pb2.HealthCheckResponse.SERVING)
    return server, bound, echo


async def _main(port: int) -> None:
    try:
        import uvloop

        uvloop.install()
    except ImportError:  # pragma: no cover
        pass
    server, bound, _ = await start_echo(port)
    print(f"echo listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(1.0)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--name", default=None)
    args = parser.parse_args()
    if args.name:
        NAME = args.name
    asyncio.run(_main(args.port))

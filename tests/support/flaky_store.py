"""A stand-in EventStore app whose answers are chosen by the stream id, for gateway tests.

``ReadStream`` on a stream named ``internal-*`` or ``unknown-*`` fails with that
status (the app's own deliberate answer); any other stream gets one event.
Run: ``python -m tests.support.flaky_store --port N``; prints ``flaky store listening on``.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from collections.abc import AsyncIterator
from typing import Any

import grpc

from grpcmesh.api.v1 import eventstore_pb2, eventstore_pb2_grpc


class FlakyStore(eventstore_pb2_grpc.EventStoreServicer):
    async def ReadStream(
        self, request: eventstore_pb2.ReadStreamRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> AsyncIterator[eventstore_pb2.RecordedEvent]:
        prefix = request.stream_id.split("-", 1)[0].upper()
        if prefix in ("INTERNAL", "UNKNOWN"):
            await context.abort(grpc.StatusCode[prefix], f"the app answers {prefix} on purpose")
        yield eventstore_pb2.RecordedEvent(stream_id=request.stream_id, type="T", id="e-1")


async def _main(port: int) -> None:
    server = grpc.aio.server()
    eventstore_pb2_grpc.add_EventStoreServicer_to_server(FlakyStore(), server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    await server.start()
    print(f"flaky store listening on 127.0.0.1:{bound}", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    await server.stop(0.5)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    asyncio.run(_main(parser.parse_args().port))

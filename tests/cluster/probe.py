"""Asks an app on this host (run inside a host's namespace) and prints its JSON answer.

``python -m tests.cluster.probe [ADDR]``: the echo app's Stats (default 127.0.0.1:50051).
``python -m tests.cluster.probe control ADDR VERB JSON``: a saga participant's
``/saga.test.Control/VERB`` (Configure, Release, Log).
"""

from __future__ import annotations

import asyncio
import sys

import grpc


async def call(target: str, method: str, body: bytes) -> bytes:
    async with grpc.aio.insecure_channel(target) as ch:
        reply: bytes = await ch.unary_unary(method)(body, timeout=10)
        return reply


def main(argv: list[str]) -> None:
    if argv[:1] == ["control"]:
        _, target, verb, body = argv
        reply = asyncio.run(call(target, f"/saga.test.Control/{verb}", body.encode()))
    else:
        reply = asyncio.run(call(argv[0] if argv else "127.0.0.1:50051", "/echo.v1.Echo/Stats", b""))
    sys.stdout.write(reply.decode())


if __name__ == "__main__":
    main(sys.argv[1:])

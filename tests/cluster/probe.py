"""Ask the app on this host for its Stats (run inside a host's namespace): prints its JSON."""

from __future__ import annotations

import asyncio
import sys

import grpc


async def main(target: str) -> None:
    async with grpc.aio.insecure_channel(target) as ch:
        sys.stdout.write((await ch.unary_unary("/echo.v1.Echo/Stats")(b"", timeout=10)).decode())


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1] if len(sys.argv) > 1 else "127.0.0.1:50051"))

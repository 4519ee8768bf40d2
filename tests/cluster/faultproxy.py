"""A user-space TCP fault proxy: added one-way latency and a bandwidth cap, switched by signals.

``tc netem`` is not available here, and iptables/nft are not installed, so a fault cannot
be put on a host's NIC transparently. This proxy sits between a host's sidecar and its
app instead (``--listen`` = the app address the shipped sidecar.toml names, ``--to`` =
where the app really listens): every call the host serves crosses it, both ways, as
it would cross a slow link. Chosen over toxiproxy because it is ~100 lines with no Go
build in CI and no control API to drive; it does only the two faults the tests need.

SIGUSR1 turns the faults on, SIGUSR2 off (the proxy starts with them off, so the
tests can put it in place, let the mesh settle, then degrade the host).

Each chunk read is delivered ``latency`` later, in order per direction; the cap is
one token bucket per direction shared by all connections (the host's link, not a
connection's), in bytes per second.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import time

CHUNK = 16 * 1024


class Link:
    """The state both directions share: on/off, latency, and one token bucket per direction."""

    def __init__(self, latency_s: float, rate: float) -> None:
        self.latency_s = latency_s
        self.rate = rate
        self.on = False
        self._next_free = {"up": 0.0, "down": 0.0}

    def delay(self, direction: str, size: int) -> float:
        """When (monotonic) a chunk of ``size`` read now may be written, under both faults."""
        now = time.monotonic()
        if not self.on:
            return now
        start = max(now, self._next_free[direction])
        self._next_free[direction] = start + size / self.rate
        return self._next_free[direction] + self.latency_s


async def pipe(
    link: Link, direction: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    """Copies until EOF; each chunk waits for its delivery time in a queue, so order is kept."""
    queue: asyncio.Queue[tuple[float, bytes]] = asyncio.Queue(maxsize=64)  # bounded: back-pressure

    async def deliver() -> None:
        while True:
            at, data = await queue.get()
            if not data:
                break
            await asyncio.sleep(max(0.0, at - time.monotonic()))
            writer.write(data)
            await writer.drain()
        with contextlib.suppress(OSError):
            writer.write_eof()

    sender = asyncio.create_task(deliver())
    try:
        while data := await reader.read(CHUNK):
            await queue.put((link.delay(direction, len(data)), data))
    finally:
        await queue.put((0.0, b""))
        with contextlib.suppress(Exception):
            await sender


async def serve(args: argparse.Namespace) -> None:
    link = Link(args.latency_ms / 1000.0, args.rate_bytes)
    host, port = args.to.rsplit(":", 1)

    async def handle(down_r: asyncio.StreamReader, down_w: asyncio.StreamWriter) -> None:
        try:
            up_r, up_w = await asyncio.open_connection(host, int(port))
        except OSError:
            down_w.close()
            return
        try:
            await asyncio.gather(pipe(link, "up", down_r, up_w), pipe(link, "down", up_r, down_w))
        except OSError:
            pass
        finally:
            for w in (up_w, down_w):
                w.close()

    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGUSR1, lambda: setattr(link, "on", True))
    loop.add_signal_handler(signal.SIGUSR2, lambda: setattr(link, "on", False))
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    listen_host, listen_port = args.listen.rsplit(":", 1)
    server = await asyncio.start_server(handle, listen_host, int(listen_port))
    print(f"faultproxy listening on {args.listen} -> {args.to}", flush=True)
    async with server:
        await stop.wait()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--listen", required=True)
    parser.add_argument("--to", required=True)
    parser.add_argument("--latency-ms", type=float, default=100.0)
    parser.add_argument("--rate-bytes", type=float, default=256 * 1024)
    asyncio.run(serve(parser.parse_args()))

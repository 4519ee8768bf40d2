"""Steady mixed load from one host, through its own sidecar: one JSON line per finished call.

Run inside a host's namespace (``python -m tests.cluster.loadgen --out calls.jsonl``).
Open loop at a fixed rate per kind (a hung backend does not slow the others down),
at most ``--max-in-flight`` calls per kind, every call with a deadline:

* ``unary``  -- Echo/Unary, IDEMPOTENT: the sidecar may retry it elsewhere;
* ``create`` -- Echo/Create, non-idempotent, a unique ``x-echo-key`` per call, so the
  driver can count at every app how often each key arrived (never twice);
* ``stream`` -- Echo/ServerStream, NO_SIDE_EFFECTS, three messages each.

Each line: ``{"t0", "t1", "kind", "code", "by", "key"}`` (wall-clock seconds, the same
clock in every namespace), flushed every 0.2 s; the driver reads the file by time window.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from typing import IO, Any

import grpc

E = "/echo.v1.Echo/"
KINDS = {"unary": "Unary", "create": "Create", "stream": "ServerStream"}


class LoadGen:
    def __init__(self, args: argparse.Namespace, out: IO[str]) -> None:
        self.args = args
        self.out = out
        self.seq = 0
        self.stop = asyncio.Event()

    async def call(self, ch: grpc.aio.Channel, kind: str) -> None:
        self.seq += 1
        key = f"{self.args.name}-{self.seq}"
        md: tuple[tuple[str, str], ...] = (("x-mesh-service", self.args.service),)
        if kind == "create":
            md += (("x-echo-key", key),)
        method = E + KINDS[kind]
        t0 = time.time()
        code, by = "OK", ""
        try:
            if kind == "stream":
                call: Any = ch.unary_stream(method)(b"s", metadata=md, timeout=self.args.deadline)
                got = [m async for m in call]
                if len(got) != 3:
                    code = f"SHORT_STREAM_{len(got)}"
            else:
                call = ch.unary_unary(method)(b"u", metadata=md, timeout=self.args.deadline)
                await call
            by = dict(await call.initial_metadata()).get("x-echo-served-by", "")
        except grpc.aio.AioRpcError as err:
            code = err.code().name
        record = {"t0": t0, "t1": time.time(), "kind": kind, "code": code, "by": by}
        if kind == "create":
            record["key"] = key
        self.out.write(json.dumps(record) + "\n")

    async def kind_loop(self, ch: grpc.aio.Channel, kind: str) -> None:
        slots = asyncio.Semaphore(self.args.max_in_flight)
        tasks: set[asyncio.Task[None]] = set()
        period = 1.0 / self.args.rate
        next_at = time.monotonic()
        while not self.stop.is_set():
            await slots.acquire()
            task = asyncio.create_task(self.call(ch, kind))
            tasks.add(task)
            task.add_done_callback(lambda t: (tasks.discard(t), slots.release()))
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*tasks, return_exceptions=True)

    async def flusher(self) -> None:
        while not self.stop.is_set():
            self.out.flush()
            await asyncio.sleep(0.2)


async def main(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with open(args.out, "a", buffering=1 << 16) as out:  # noqa: ASYNC230 - once, before any call
        gen = LoadGen(args, out)
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, gen.stop.set)
        options = [("grpc.enable_retries", 0)]  # the sidecar retries, not the client
        async with grpc.aio.insecure_channel(args.target, options=options) as ch:
            print("loadgen running", flush=True)
            await asyncio.gather(gen.flusher(), *(gen.kind_loop(ch, k) for k in KINDS))
        out.flush()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--target", default="127.0.0.1:15001", help="the local sidecar's outbound")
    parser.add_argument("--service", default="echo")
    parser.add_argument("--name", required=True, help="prefix of this generator's x-echo-key values")
    parser.add_argument("--out", required=True)
    parser.add_argument("--rate", type=float, default=10.0, help="calls per second per kind")
    parser.add_argument("--deadline", type=float, default=5.0, help="seconds per call")
    parser.add_argument("--max-in-flight", type=int, default=64, help="per kind")
    asyncio.run(main(parser.parse_args()))

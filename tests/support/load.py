"""Continuous calls from a few workers while a test changes things under them."""

from __future__ import annotations

import asyncio
from types import TracebackType

import grpc

from tests.support.procs import wait_for_async


class Load:
    """``workers`` loops calling ``method`` at ``target`` nonstop; counts successes and failures."""

    def __init__(
        self, target: str, method: str, metadata: tuple[tuple[str, str], ...] = (), workers: int = 4
    ) -> None:
        self.target = target
        self.method = method
        self.metadata = metadata
        self.ok = 0
        self.errors: list[str] = []
        self._stop = asyncio.Event()
        self._workers = workers
        self._tasks: list[asyncio.Task[None]] = []

    async def _run(self) -> None:
        async with grpc.aio.insecure_channel(self.target) as ch:
            call = ch.unary_unary(self.method)
            while not self._stop.is_set():
                try:
                    await call(b"x", metadata=self.metadata, timeout=10)
                    self.ok += 1
                except grpc.aio.AioRpcError as err:
                    self.errors.append(f"{err.code().name}: {err.details()}")

    async def progressed(self, calls: int = 30, timeout: float = 30) -> None:
        """Waits until ``calls`` more calls succeeded (the load runs on whatever changed)."""
        start = self.ok

        async def enough() -> bool:
            return self.ok >= start + calls

        await wait_for_async(enough, timeout, what=f"{calls} more successful calls")

    async def stop(self) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)

    async def __aenter__(self) -> Load:
        self._tasks = [asyncio.create_task(self._run()) for _ in range(self._workers)]
        return self

    async def __aexit__(self, *exc: type[BaseException] | BaseException | TracebackType | None) -> None:
        await self.stop()

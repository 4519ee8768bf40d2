"""``/tap``: a live stream of call summaries from this sidecar, for ``grpcmesh tap``.

Telemetry publishes each finished call (direction, service, method, status,
latency, request id) here; while nobody listens that is one attribute check.
Each listener is a bounded queue with its filter: a listener that reads too
slowly loses records (and is told how many) instead of holding memory, and at
most ``MAX_LISTENERS`` may listen at once. The stream is NDJSON over a chunked
HTTP response, so ``curl`` works as well as the CLI.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from aiohttp import web

__all__ = ["MAX_LISTENERS", "Tap", "TapFilter", "TapRecord"]

MAX_LISTENERS = 16
QUEUE = 1000  # records buffered per listener
HEARTBEAT_S = 5.0  # an empty line now and then, so a gone client is noticed while idle


@dataclass(frozen=True)
class TapRecord:
    ts: float
    direction: str
    service: str
    method: str
    code: str
    latency_ms: float
    request_id: str


@dataclass(frozen=True)
class TapFilter:
    service: str | None = None
    method: str | None = None
    code: str | None = None
    direction: str | None = None
    errors_only: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> TapFilter:
        direction = query.get("direction") or None
        if direction not in (None, "inbound", "outbound"):
            raise ValueError(f"direction: must be inbound or outbound, got {direction!r}")
        return cls(
            service=query.get("service") or None,
            method=(query.get("method") or "").lstrip("/") or None,
            code=(query.get("code") or "").upper() or None,
            direction=direction,
            errors_only=query.get("errors", "") in ("1", "true", "yes"),
        )

    def matches(self, r: TapRecord) -> bool:
        return (
            (self.service is None or r.service == self.service)
            and (
                self.method is None
                or r.method.lstrip("/") == self.method
                or r.method.endswith("/" + self.method)
            )
            and (self.code is None or r.code == self.code)
            and (self.direction is None or r.direction == self.direction)
            and (not self.errors_only or r.code != "OK")
        )


class _Listener:
    def __init__(self, flt: TapFilter) -> None:
        self.filter = flt
        self.queue: asyncio.Queue[TapRecord] = asyncio.Queue(QUEUE)
        self.dropped = 0


class Tap:
    """Fan-out of call summaries to the current listeners (all on the sidecar's event loop)."""

    def __init__(self) -> None:
        self._listeners: set[_Listener] = set()

    @property
    def listening(self) -> bool:
        return bool(self._listeners)

    def publish(
        self, direction: str, service: str, method: str, code: str, seconds: float, request_id: str
    ) -> None:
        record = TapRecord(
            time.time(), direction, service, method, code, round(seconds * 1000, 3), request_id
        )
        for listener in self._listeners:
            if listener.filter.matches(record):
                try:
                    listener.queue.put_nowait(record)
                except asyncio.QueueFull:
                    listener.dropped += 1

    async def stream(self, request: web.Request) -> web.StreamResponse:
        try:
            flt = TapFilter.from_query(request.query)
        except ValueError as err:
            return web.Response(status=400, text=f"bad parameter {err}\n")
        if len(self._listeners) >= MAX_LISTENERS:
            return web.Response(status=503, text=f"tap: {MAX_LISTENERS} listeners already\n")
        response = web.StreamResponse(headers={"Content-Type": "application/x-ndjson"})
        await response.prepare(request)
        listener = _Listener(flt)
        self._listeners.add(listener)
        try:
            await response.write(b'{"tap": "started"}\n')
            while True:
                try:
                    record = await asyncio.wait_for(listener.queue.get(), HEARTBEAT_S)
                except TimeoutError:
                    await response.write(b"\n")
                    continue
                if listener.dropped:
                    await response.write(json.dumps({"dropped": listener.dropped}).encode() + b"\n")
                    listener.dropped = 0
                await response.write(json.dumps(asdict(record)).encode() + b"\n")
        except ConnectionResetError:  # the client went away
            pass
        finally:
            self._listeners.discard(listener)
        return response

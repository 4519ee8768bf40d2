"""The admin endpoint over a real socket: routes, prefix routes, HEAD, 404 listing, 405, limits."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import aiohttp
import pytest

from grpcmesh.sidecar.admin import AdminServer, json_route


def _boom() -> tuple[int, str, bytes]:
    raise RuntimeError("route failed")


@pytest.fixture
async def admin() -> AsyncIterator[str]:
    server = AdminServer(
        "127.0.0.1",
        0,
        {"/ready": json_route(lambda: {"ready": False}, ok=lambda: False), "/boom": _boom},
        {"/traces/": lambda rest: (200, "text/html; charset=utf-8", f"<p>{rest}</p>".encode())},
    )
    await server.start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        await server.close()


async def test_routes_head_404_405(admin: str) -> None:
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as http:
        async with http.get(f"{admin}/ready") as resp:
            assert (resp.status, resp.content_type, await resp.json()) == (
                503,
                "application/json",
                {"ready": False},
            )
        async with http.get(f"{admin}/traces/abc?x=1") as resp:
            assert (resp.status, resp.headers["Content-Type"]) == (200, "text/html; charset=utf-8")
            assert await resp.text() == "<p>abc</p>"
        async with http.head(f"{admin}/traces/abc") as resp:
            assert (resp.status, await resp.read()) == (200, b"")
        async with http.get(f"{admin}/traces/") as resp:  # a prefix needs a rest
            assert (resp.status, await resp.text()) == (404, "/boom\n/ready\n")
        async with http.post(f"{admin}/ready", data=b"x") as resp:
            assert (resp.status, await resp.text()) == (405, "only GET\n")
        async with http.get(f"{admin}/boom") as resp:  # a failing route is a 500, the server lives on
            assert resp.status == 500
        async with http.get(f"{admin}/ready") as resp:
            assert resp.status == 503


async def test_oversized_request_head_is_refused(admin: str) -> None:
    reader, writer = await asyncio.open_connection("127.0.0.1", int(admin.rsplit(":", 1)[1]))
    try:
        writer.write(b"GET /ready HTTP/1.1\r\nHost: x\r\nX-Big: " + b"v" * 100_000 + b"\r\n\r\n")
        async with asyncio.timeout(10):
            reply = await reader.read(4096)
    finally:
        writer.close()
    assert reply.split(b" ", 2)[1] == b"400", reply[:80]  # aiohttp caps a header line at 8 KiB

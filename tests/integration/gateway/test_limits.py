"""Gateway limits against hostile HTTP clients: slow headers, idle and excess connections,
deep JSON, lenient base64, bad percent-encoding, out-of-range numbers and repeated failed
authentication -- each answered with its own status while other clients are served."""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from typing import Any

from tests.integration.gateway.conftest import StartGateway
from tests.support.gateway import GatewayProc, make_token
from tests.support.procs import wait_for_async

TOKEN = make_token("alice")
WAIT = 20.0  # bound on every wait below (the limits under test are 1 s)


async def raw_request(port: int, data: bytes) -> tuple[int, dict[str, Any]]:
    """Sends raw bytes (no client-side URL normalisation) and returns (status, JSON body)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        async with asyncio.timeout(WAIT):
            answer = await reader.read()
    finally:
        writer.close()
    head, _, body = answer.partition(b"\r\n\r\n")
    return int(head.split()[1]), json.loads(body or b"{}")


def get(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: gw\r\nAuthorization: Bearer {TOKEN}\r\nConnection: close\r\n\r\n".encode()


def violation(body: dict[str, Any]) -> str:
    field: str = body["details"][0]["fieldViolations"][0]["field"]
    return field


async def closed(reader: asyncio.StreamReader) -> bytes:
    """Everything the server sends until it closes the connection."""
    async with asyncio.timeout(WAIT):
        return await reader.read()


async def test_slow_headers_are_cut_off_while_others_are_served(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[limits]\nheader_timeout = 1\nidle_timeout = 60\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)

    async def trickle() -> None:
        for byte in b"GET /healthz HTTP/1.1\r\nHost: gw\r\nX-Slow: " + b"a" * 10_000:
            writer.write(bytes([byte]))
            await asyncio.sleep(0.1)  # the slow client itself, not a synchronisation

    slow = asyncio.create_task(trickle())
    try:
        served = await gateway.request("GET", "/healthz")  # another client meanwhile
        assert served.status == 200
        answer = await closed(reader)
        assert answer.startswith(b"HTTP/1.1 408"), answer[:100]
        assert not slow.done()  # cut off while still trickling
    finally:
        slow.cancel()
        with contextlib.suppress(asyncio.CancelledError, ConnectionError):
            await slow
        writer.close()
    assert (await gateway.request("GET", "/healthz")).status == 200


async def test_idle_connections_are_closed(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[limits]\nidle_timeout = 1\n")
    reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\n\r\n")  # keep-alive
    try:
        answer = await closed(reader)  # the answer, then the close once idle
        assert answer.startswith(b"HTTP/1.1 200")
    finally:
        writer.close()


async def test_connections_beyond_the_cap_are_refused_alone(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[limits]\nmax_connections = 3\nheader_timeout = 60\n")
    held = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(3)]
    try:
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        answer = await closed(reader)
        writer.close()
        assert answer.startswith(b"HTTP/1.1 503"), answer[:100]
        # a held connection still works, and one freed slot serves a new client
        r0, w0 = held[0]
        w0.write(b"GET /healthz HTTP/1.1\r\nHost: gw\r\nConnection: close\r\n\r\n")
        assert (await closed(r0)).startswith(b"HTTP/1.1 200")

        async def served() -> bool:  # the freed slot is released once the server sees the close
            return (await raw_request(gateway.port, get("/healthz")))[0] == 200

        await wait_for_async(served, WAIT, what="a new connection served after one closed")
    finally:
        for _, w in held:
            w.close()


async def test_deep_json_is_400_naming_the_field(gateway: GatewayProc) -> None:
    deep_events = b'{"events": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    reply = await gateway.request("POST", "/v1/streams/deep", token=TOKEN, raw=deep_events)
    assert reply.status == 400, reply.text
    assert violation(reply.json()) == "events"
    deepest = b"[" * 100_000 + b"]" * 100_000
    reply = await gateway.request("POST", "/v1/streams/deep", token=TOKEN, raw=deepest)
    assert reply.status == 400, reply.text
    assert violation(reply.json()) == "body"


async def test_bytes_must_be_base64(gateway: GatewayProc) -> None:
    bad = {"events": [{"id": str(uuid.uuid4()), "type": "T", "data": "!!!"}]}
    reply = await gateway.request("POST", "/v1/streams/b64", token=TOKEN, body=bad)
    assert reply.status == 400, reply.text
    assert violation(reply.json()) == "events[0].data"
    good = {"events": [{"id": str(uuid.uuid4()), "type": "T", "data": "aGk_"}]}  # URL-safe alphabet
    assert (await gateway.request("POST", "/v1/streams/b64", token=TOKEN, body=good)).status == 200


async def test_invalid_percent_encoding_is_400(gateway: GatewayProc) -> None:
    for path, field in (
        ("/v1/streams/%ff", "stream_id"),
        ("/v1/streams/%zz", "stream_id"),
        ("/v1/streams/x?fromRevision=%fe", "fromRevision"),
    ):
        status, body = await raw_request(gateway.port, get(path))
        assert status == 400, (path, body)
        assert violation(body) == field


async def test_out_of_range_numbers_are_400(gateway: GatewayProc) -> None:
    status, body = await raw_request(gateway.port, get("/v1/streams/x?fromRevision=18446744073709551615"))
    assert status == 400, body
    assert "from_revision" in json.dumps(body)


async def test_failed_authentication_is_rate_limited_per_address(gateway_for: StartGateway) -> None:
    gateway = gateway_for("[limits]\nauth_failure_burst = 5\nauth_failure_rate = 0.01\n")
    bad = make_token("mallory", secret="not-the-secret-0123456789abcdef-xyz")
    statuses = [(await gateway.request("GET", "/v1/streams/x", token=bad)).status for _ in range(8)]
    assert statuses[:5] == [401] * 5
    assert statuses[5:] == [429] * 3
    blocked = await gateway.request("GET", "/v1/streams/x", token=bad)
    assert int(blocked.headers["Retry-After"]) >= 1

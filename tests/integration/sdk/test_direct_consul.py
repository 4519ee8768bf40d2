"""Direct mode against a real Consul: three instances, one killed mid-load, no failed idempotent call.

The client has no sidecar: it watches Consul itself, balances over the three
echo processes, and when one dies (SIGKILL, no deregistration) its in-process
cluster retries the idempotent calls that hit the dead instance on a live one
and trips that endpoint's breaker, until Consul's health check removes it.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter

import pytest

from grpcmesh.sdk import AsyncMeshClient
from grpcmesh.sdk.discovery import ConsulResolver
from grpcmesh.sdk.registration import Registration
from tests.support.consul import ConsulAgent
from tests.support.procs import ProcessGroup, free_port, wait_for_async

pytestmark = pytest.mark.consul

UNARY = "/echo.v1.Echo/Unary"  # declared IDEMPOTENT in echo's descriptor


class EchoStub:
    """Raw-bytes stub for tests/support/echo.py."""

    def __init__(self, channel: object) -> None:
        self.Unary = channel.unary_unary(UNARY)  # type: ignore[attr-defined]


async def test_one_of_three_killed_mid_load_fails_no_idempotent_call(
    consul: ConsulAgent, procs: ProcessGroup
) -> None:
    instances = {}
    registrations = []
    for name in ("e1", "e2", "e3"):
        port = free_port()
        proc = procs.start(
            [sys.executable, "-m", "tests.support.echo", "--port", str(port), "--name", name], name
        )
        proc.wait_output("echo listening on")
        instances[name] = proc
        reg = Registration(
            "echo",
            "127.0.0.1",
            port,
            consul_url=consul.http_url,
            grpc_services=["echo.v1.Echo"],
            check_interval="1s",
            check_timeout="1s",
        )
        await reg.register()
        registrations.append(reg)
    probe = ConsulResolver(consul.http_url)

    async def all_passing() -> bool:
        return len((await probe.resolve("echo")).endpoints) == 3

    await wait_for_async(all_passing, timeout=30, interval=0.2, what="3 passing echo instances in consul")

    ok = 0
    failures: list[BaseException] = []
    served_after_kill: Counter[str] = Counter()
    killed = asyncio.Event()
    enough = asyncio.Event()

    async with AsyncMeshClient(service="loadgen", discovery=consul.http_url, idempotent=[UNARY]) as client:
        stub = client.stub(EchoStub, target="echo")

        async def worker(i: int) -> None:
            nonlocal ok
            n = 0
            while not enough.is_set():
                n += 1
                payload = f"{i}-{n}".encode()
                try:
                    call = stub.Unary(payload, timeout=10)
                    assert await call == payload
                    ok += 1
                    if killed.is_set():
                        served = dict(await call.initial_metadata() or ())
                        served_after_kill[str(served.get("x-echo-served-by"))] += 1
                except Exception as err:  # counted: the test asserts there are none
                    failures.append(err)

        workers = [asyncio.create_task(worker(i)) for i in range(6)]
        try:
            await wait_for_async(lambda: _at_least(ok, 150), timeout=60, what="150 calls before the kill")
            instances["e2"].kill()
            killed.set()
            mark = ok
            await wait_for_async(
                lambda: _at_least(ok, mark + 450), timeout=90, what="450 calls after the kill"
            )
        finally:
            enough.set()
            await asyncio.gather(*workers)

    for reg in registrations:
        await reg.close()
    await probe.close()
    assert failures == [], f"{len(failures)} failed idempotent calls, first: {failures[:3]}"
    assert ok >= 600
    assert served_after_kill["e2"] <= 6  # at most the calls already answered when it died
    assert served_after_kill["e1"] > 0
    assert served_after_kill["e3"] > 0


async def _at_least(value: int, target: int) -> bool:
    return value >= target

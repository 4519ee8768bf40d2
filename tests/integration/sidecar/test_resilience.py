"""An application's own errors never become an outage; broken endpoints are ejected, never all.

Real processes: echo apps, sidecars, the gateway (direct mode) and a stand-in
event store. Each scenario is run through the path(s) the issue names.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import grpc
import pytest

from grpcmesh.sdk import AsyncMeshClient
from grpcmesh.sdk.errors import MeshError
from tests.integration.sidecar.test_faults import Load, transitions_to
from tests.support.gateway import make_token, start_gateway
from tests.support.mesh import ROOT, SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, free_port, wait_for_async

E = "/echo.v1.Echo/"
IDEMPOTENT = {f"{E}Unary": {"kind": "unary_unary", "idempotent": True}}
Call = Callable[[], Awaitable[bool]]  # True: the call succeeded


def sidecar_for(procs: ProcessGroup, targets: list[str], config: dict[str, Any] | None = None) -> SidecarProc:
    return start_sidecar(
        procs,
        "client",
        "127.0.0.1:1",
        "--endpoints",
        "echo=" + ",".join(targets),
        config={"methods": IDEMPOTENT, **(config or {})},
    )


async def interleave(good: Call, bad: Call) -> tuple[int, int]:
    """50 bad calls in bursts of 10, each burst followed by 40 good ones: (good failed, bad succeeded)."""
    good_failed = bad_ok = 0
    for _ in range(5):
        for _ in range(10):
            bad_ok += await bad()
        for _ in range(40):
            good_failed += not await good()
    return good_failed, bad_ok


def grpc_calls(channel: Any, other: Any) -> tuple[Call, Call]:
    """(good, bad) unary echo calls; the bad ones ask the app to answer INTERNAL or UNKNOWN."""
    codes = ["INTERNAL", "UNKNOWN"]
    answered: list[bool] = []

    async def good() -> bool:
        return await code_of(channel.unary_unary(E + "Unary")(b"ok", timeout=5)) == "OK"

    async def bad() -> bool:
        codes.reverse()
        md = (("x-echo-fail", codes[0]),)
        code = await code_of(other.unary_unary(E + "Unary")(b"bad", timeout=5, metadata=md))
        answered.append(code == codes[0])  # the app's answer, unchanged
        return code == "OK"

    return good, bad


async def code_of(call: Awaitable[Any]) -> str:
    """The status name of a call made on a plain grpc channel or an SDK one (typed errors)."""
    try:
        await call
        return "OK"
    except grpc.aio.AioRpcError as err:
        return err.code().name
    except MeshError as err:
        return err.code.name


async def test_app_errors_never_cut_off_the_only_endpoint_through_a_sidecar(procs: ProcessGroup) -> None:
    echo = start_echo_proc(procs, "solo")
    sidecar = sidecar_for(procs, [echo.target])
    target = f"127.0.0.1:{sidecar.outbound}"
    async with grpc.aio.insecure_channel(target) as a, grpc.aio.insecure_channel(target) as b:
        good_failed, bad_ok = await interleave(*grpc_calls(a, b))
    assert (good_failed, bad_ok) == (0, 0)
    (cluster,) = sidecar.admin_json("/clusters")["outbound"]
    assert cluster["open_breakers"] == 0
    assert cluster["outlier"]["panic_threshold_percent"] == 50.0


async def test_app_errors_never_cut_off_the_only_endpoint_in_direct_mode(procs: ProcessGroup) -> None:
    echo = start_echo_proc(procs, "solo")
    # One client shared by two callers, as a gateway shares it between its users: one cluster.
    async with AsyncMeshClient(discovery={"echo": [echo.target]}) as client:
        good_failed, bad_ok = await interleave(*grpc_calls(client.channel("echo"), client.channel("echo")))
    assert (good_failed, bad_ok) == (0, 0)


async def test_app_errors_never_cut_off_the_only_endpoint_through_the_gateway(
    procs: ProcessGroup, tmp_path: Path
) -> None:
    port = free_port()
    store = procs.start(
        [sys.executable, "-m", "tests.support.flaky_store", "--port", str(port)], "flaky", cwd=ROOT
    )
    store.wait_output("flaky store listening on", timeout=20)
    config = "[rate_limit]\nrate = 10000\nburst = 10000\n"  # this test is about breakers
    config += f'[discovery]\neventstore = ["127.0.0.1:{port}"]\n[services]\n"grpcmesh.api.v1.EventStore" = "eventstore"\n'
    gateway = start_gateway(procs, tmp_path, config)
    alice, bob = make_token("alice"), make_token("bob")
    statuses: Counter[int] = Counter()
    names = ["internal", "unknown"]

    async def good() -> bool:
        reply = await gateway.request("GET", "/v1/streams/fine", token=alice)
        if reply.status != 200:
            statuses[reply.status] += 1
            failures.append(reply.text)
        return reply.status == 200

    async def bad() -> bool:
        names.reverse()
        reply = await gateway.request("GET", f"/v1/streams/{names[0]}-{uuid.uuid4().hex[:6]}", token=bob)
        statuses[reply.status] += 1
        return reply.status == 200

    failures: list[str] = []
    good_failed, bad_ok = await interleave(good, bad)
    assert (good_failed, bad_ok) == (0, 0), (statuses, failures[:3])
    assert 503 not in statuses, statuses


async def test_a_broken_endpoint_is_ejected_and_no_idempotent_call_fails(procs: ProcessGroup) -> None:
    echos = [start_echo_proc(procs, f"h{i}") for i in range(2)]
    broken = f"127.0.0.1:{free_port()}"  # refuses connections at first
    config = {"cluster": {"breaker": {"consecutive_failures": 3, "cool_down_s": 0.5, "half_open_probes": 1}}}
    sidecar = sidecar_for(procs, [echos[0].target, broken, echos[1].target], config)

    def opened() -> float:
        return transitions_to(admin_get(sidecar.admin, "/metrics")[1], broken, "OPEN")

    async with Load(f"127.0.0.1:{sidecar.outbound}") as load:
        await load.reach(100)

        async def ejected(times: float) -> bool:
            await load.reach(10)
            return opened() >= times

        await wait_for_async(lambda: ejected(1), 30, what="the refusing endpoint to be ejected")
        app = start_echo_proc(procs, "broken", port=int(broken.rsplit(":", 1)[1]))  # now it answers ...
        async with grpc.aio.insecure_channel(app.target) as ch:  # ... UNAVAILABLE
            await ch.unary_unary(E + "Control")(json.dumps({"fail": "UNAVAILABLE"}).encode(), timeout=5)
        before = opened()
        await wait_for_async(
            lambda: ejected(before + 1), 30, what="the UNAVAILABLE endpoint to be ejected again"
        )
        await load.reach(100)
    assert not load.failures, load.failures
    (cluster,) = sidecar.admin_json("/clusters")["outbound"]
    assert cluster["panic"] is False  # one of three ejected: the others carry the load


async def test_all_endpoints_broken_then_one_recovers_calls_succeed_at_once(procs: ProcessGroup) -> None:
    ports = [free_port() for _ in range(3)]
    config = {
        "cluster": {
            "breaker": {"consecutive_failures": 2, "cool_down_s": 300.0, "max_ejection_percent": 100.0},
            "retry": {"budget_min_per_s": 100.0, "backoff_base_s": 0.001, "backoff_max_s": 0.002},
        }
    }
    sidecar = sidecar_for(procs, [f"127.0.0.1:{p}" for p in ports], config)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.outbound}") as ch:
        call = ch.unary_unary(E + "Unary")

        async def outcome() -> str:
            try:
                await call(b"x", timeout=5)
                return "OK"
            except grpc.aio.AioRpcError as err:
                return err.code().name

        async def all_ejected() -> bool:
            assert await outcome() == "UNAVAILABLE"
            (cluster,) = sidecar.admin_json("/clusters")["outbound"]
            return bool(cluster["open_breakers"] == 3)

        await wait_for_async(all_ejected, 30, what="every endpoint to be ejected")
        (cluster,) = sidecar.admin_json("/clusters")["outbound"]
        assert cluster["panic"] is True  # no healthy endpoint: balance over all of them
        start_echo_proc(procs, "back", port=ports[1])  # its breaker stays OPEN for 300 s ...

        async def succeeds() -> bool:
            return await outcome() == "OK"

        await wait_for_async(succeeds, 20, what="a call to succeed once one endpoint is back")
        outcomes = Counter([await outcome() for _ in range(30)])  # ... yet panic mode reaches it
    assert outcomes == {"OK": 30}, outcomes


async def test_pushback_delays_then_stops_retries_through_a_sidecar(procs: ProcessGroup) -> None:
    echo = start_echo_proc(procs, "pb")
    sidecar = sidecar_for(procs, [echo.target], {"cluster": {"retry": {"max_attempts": 5}}})
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.outbound}") as ch:
        await check_pushback(ch, echo.target)


async def test_pushback_delays_then_stops_retries_in_direct_mode(procs: ProcessGroup) -> None:
    echo = start_echo_proc(procs, "pb")
    client = AsyncMeshClient(discovery={"echo": [echo.target]}, idempotent=[f"{E}*"])
    async with client:
        await check_pushback(client.channel("echo"), echo.target)


async def check_pushback(channel: Any, app: str) -> None:
    """The app says "retry in 200 ms" then "stop": two attempts, 200 ms or more apart; then "200" alone."""
    stop, once = uuid.uuid4().hex, uuid.uuid4().hex
    unary = channel.unary_unary(E + "Unary")
    md = (("x-echo-key", stop), ("x-echo-pushback", "200,-1"))
    assert await code_of(unary(b"x", timeout=10, metadata=md)) == "UNAVAILABLE"
    assert await unary(b"y", timeout=10, metadata=(("x-echo-key", once), ("x-echo-pushback", "200"))) == b"y"
    async with grpc.aio.insecure_channel(app) as ch:
        arrivals = json.loads(await ch.unary_unary(E + "Stats")(b"", timeout=5))["arrivals"]
    for key, attempts in ((stop, 2), (once, 2)):
        times = arrivals[key]
        assert len(times) == attempts, (key, times)  # -1 stopped the retries (max_attempts allows more)
        assert times[1] - times[0] >= 0.2, times  # the pushback delayed the next attempt


async def test_long_streams_do_not_poison_the_latency_estimate(procs: ProcessGroup) -> None:
    """The EWMA is the time to the response headers: a stream open for 1.5 s does not raise it to 1.5 s."""
    echo = start_echo_proc(procs, "long")
    sidecar = sidecar_for(procs, [echo.target])
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.outbound}") as ch:
        md = (("x-echo-delay-ms", "1500"), ("x-echo-count", "1"))  # headers at once, the message after 1.5 s
        replies = [r async for r in ch.unary_stream(E + "ServerStream")(b"s", timeout=10, metadata=md)]
    assert replies == [b"s0"]
    (cluster,) = sidecar.admin_json("/clusters")["outbound"]
    (endpoint,) = cluster["endpoints"]
    assert endpoint["ewma_ms"] < 1000.0, endpoint  # the whole stream lasted >= 1500 ms


async def test_a_remote_sidecars_own_limit_is_not_counted_against_its_endpoint(procs: ProcessGroup) -> None:
    """The inbound's RESOURCE_EXHAUSTED (message over its configured cap) is marked local."""
    echo = start_echo_proc(procs, "capped")
    inbound = start_sidecar(procs, "echo", echo.target, "--max-message-bytes", "1048576")
    config = {"cluster": {"breaker": {"consecutive_failures": 3}}}
    caller = sidecar_for(procs, [f"127.0.0.1:{inbound.inbound}"], config)  # no cap of its own
    async with grpc.aio.insecure_channel(f"127.0.0.1:{caller.outbound}") as ch:
        unary = ch.unary_unary(E + "Unary")
        for _ in range(10):
            with pytest.raises(grpc.aio.AioRpcError) as caught:
                await unary(b"x" * (2 << 20), timeout=10)
            assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
            assert "max_message_bytes" in (caught.value.details() or "")
            assert ("x-mesh-local", "1") in tuple(caught.value.trailing_metadata() or ())
        assert await unary(b"fine", timeout=10) == b"fine"
    (cluster,) = caller.admin_json("/clusters")["outbound"]
    assert cluster["open_breakers"] == 0
    assert cluster["endpoints"][0]["breaker"]["consecutive_failures"] == 0

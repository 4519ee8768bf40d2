"""Fault tests against 3 real upstream instances under a bounded load.

- kill one instance: zero failed idempotent calls (retries absorb it), its
  breaker opens; it comes back on the same port: traffic returns to it;
- every instance failing: the retry budget caps the extra load the app sees
  (counted at the app), far below max_attempts x requests.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter

import grpc

from tests.support.mesh import EchoProc, SidecarProc, admin_get, start_echo_proc, start_sidecar
from tests.support.procs import ProcessGroup, wait_for_async

E = "/echo.v1.Echo/"


async def unary_calls(echo: EchoProc) -> int:
    async with grpc.aio.insecure_channel(echo.target) as ch:
        body = json.loads(await ch.unary_unary(E + "Stats")(b"", timeout=5))
    return int(body["calls"].get("Unary", 0))


class Load:
    """``workers`` concurrent loops of idempotent unary calls through the sidecar."""

    def __init__(self, target: str, workers: int = 8) -> None:
        self.target = target
        self.workers = workers
        self.ok = 0
        self.failures: Counter[str] = Counter()
        self._stop = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    async def _loop(self, ch: grpc.aio.Channel) -> None:
        call = ch.unary_unary(E + "Unary")
        while not self._stop.is_set():
            try:
                await call(b"load", timeout=5)
                self.ok += 1
            except grpc.aio.AioRpcError as err:
                self.failures[f"{err.code().name}: {err.details()}"] += 1

    async def __aenter__(self) -> Load:
        self._ch = grpc.aio.insecure_channel(self.target)
        self._tasks = [asyncio.create_task(self._loop(self._ch)) for _ in range(self.workers)]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await asyncio.gather(*self._tasks)
        await self._ch.close()

    async def reach(self, n: int, timeout: float = 30) -> None:
        target = self.ok + n

        async def done() -> bool:
            return self.ok >= target

        await wait_for_async(done, timeout, what=f"{n} more successful calls")


def client_sidecar(procs: ProcessGroup, echos: list[EchoProc], config: dict[str, object]) -> SidecarProc:
    """A sidecar whose service "echo" is the given instances (static discovery)."""
    return start_sidecar(
        procs,
        "client",
        "127.0.0.1:1",
        "--endpoints",
        "echo=" + ",".join(e.target for e in echos),
        config=config,
    )


def transitions_to(metrics: str, endpoint: str, state: str) -> float:
    pattern = (
        rf'grpcmesh_breaker_transitions_total\{{breaker="echo/{re.escape(endpoint)}",to="{state}"\}} (\S+)'
    )
    found = re.search(pattern, metrics)
    return float(found.group(1)) if found else 0.0


async def test_kill_one_instance_no_failures_breaker_opens_traffic_returns(procs: ProcessGroup) -> None:
    echos = [start_echo_proc(procs, f"e{i}") for i in range(3)]
    config = {
        "cluster": {
            "breaker": {"consecutive_failures": 3, "cool_down_s": 0.5, "half_open_probes": 1},
            "retry": {"max_attempts": 3},
        }
    }
    sidecar = client_sidecar(procs, echos, config)
    victim = echos[1]
    async with Load(f"127.0.0.1:{sidecar.outbound}") as load:
        await load.reach(200)
        assert await unary_calls(victim) > 0  # the balancer was using it
        victim.proc.kill()
        await load.reach(300)
        metrics = admin_get(sidecar.admin, "/metrics")[1]
        assert transitions_to(metrics, victim.target, "OPEN") >= 1, metrics
        clusters = sidecar.admin_json("/clusters")
        (state,) = [e for c in clusters["outbound"] for e in c["endpoints"] if e["target"] == victim.target]
        assert state["breaker"]["state"] in ("OPEN", "HALF_OPEN")
        assert clusters["outbound"][0]["retry"]["retries_total"] >= 1

        back = start_echo_proc(procs, "e1-again", port=victim.port)

        async def traffic_returned() -> bool:
            await load.reach(20)
            return await unary_calls(back) >= 20

        await wait_for_async(traffic_returned, 30, what="traffic to return to the restarted instance")
        assert transitions_to(admin_get(sidecar.admin, "/metrics")[1], victim.target, "CLOSED") >= 1
    assert not load.failures, load.failures
    assert load.ok >= 520


async def test_retry_budget_caps_extra_load_on_a_failing_service(procs: ProcessGroup) -> None:
    echos = [start_echo_proc(procs, f"f{i}") for i in range(3)]
    config = {
        "cluster": {
            # breakers out of the way: this test isolates the budget
            "breaker": {"consecutive_failures": 1000000, "min_requests": 1000000},
            "retry": {
                "max_attempts": 3,
                "budget_ratio": 0.2,
                "budget_min_per_s": 0.5,
                "budget_window_s": 60.0,
                "backoff_base_s": 0.001,
                "backoff_max_s": 0.002,
            },
        }
    }
    sidecar = client_sidecar(procs, echos, config)
    for e in echos:
        async with grpc.aio.insecure_channel(e.target) as ch:
            await ch.unary_unary(E + "Control")(json.dumps({"fail": "UNAVAILABLE"}).encode(), timeout=5)
    before = sum([await unary_calls(e) for e in echos])
    requests = 300
    codes: Counter[grpc.StatusCode] = Counter()
    async with grpc.aio.insecure_channel(f"127.0.0.1:{sidecar.outbound}") as ch:
        call = ch.unary_unary(E + "Unary")
        sem = asyncio.Semaphore(4)

        async def one() -> None:
            async with sem:
                try:
                    await call(b"x", timeout=10)
                    codes[grpc.StatusCode.OK] += 1
                except grpc.aio.AioRpcError as err:
                    codes[err.code()] += 1

        await asyncio.gather(*(one() for _ in range(requests)))
    seen_by_app = sum([await unary_calls(e) for e in echos]) - before
    assert codes == {grpc.StatusCode.UNAVAILABLE: requests}
    floor = 0.5 * 60.0
    # without a budget the app would see up to 3 x 300 = 900 calls
    assert requests < seen_by_app <= requests * 1.2 + floor + 1, seen_by_app
    retry = sidecar.admin_json("/clusters")["outbound"][0]["retry"]
    assert retry["budget_denied"] > 0
    assert retry["retries_total"] == seen_by_app - requests

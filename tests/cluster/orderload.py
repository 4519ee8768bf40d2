"""Orders and sagas from one host, through its own sidecar; and the check that follows a fault.

``run``: orders, each a CreateOrder then ``--items`` AddItem commands. A command is
re-sent with the SAME command id (the bus's idempotency key) until acknowledged, so
every order's expected event count is known; after each acknowledgement a query with
``min_position`` (read-your-writes) must see it. Sagas (``order``) start at
``--saga-rate`` with a fresh idempotency key, re-sent likewise until they have an id.
One JSON line per acknowledged command, per query and per started saga.

``verify``: for every order in the log, ``revision + 1`` (events in its stream) must
equal the acknowledged commands (none lost, none twice) and ``applied_events`` must
equal ``revision + 1`` (projected exactly once), read with read-your-writes; every
saga must have ended COMPLETED or COMPENSATED. Prints one JSON summary line; exits
non-zero when any check fails.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from typing import IO, Any, TypeVar

import grpc
from google.protobuf import any_pb2, struct_pb2
from google.protobuf.message import Message

from grpcmesh.api.examples.orders.v1 import orders_pb2 as o
from grpcmesh.api.v1 import commandbus_pb2 as cb
from grpcmesh.api.v1 import commandbus_pb2_grpc as cb_grpc
from grpcmesh.api.v1 import querybus_pb2 as qb
from grpcmesh.api.v1 import querybus_pb2_grpc as qb_grpc
from grpcmesh.api.v1 import saga_pb2 as sg
from grpcmesh.api.v1 import saga_pb2_grpc as sg_grpc

T = TypeVar("T")
GOOD_END = {sg.SAGA_STATUS_COMPLETED, sg.SAGA_STATUS_COMPENSATED}


def _any(message: Message) -> any_pb2.Any:
    packed = any_pb2.Any()
    packed.Pack(message)
    return packed


def _md(service: str) -> tuple[tuple[str, str], ...]:
    return (("x-mesh-service", service),)


async def until_ok(call: Callable[[], Awaitable[T]], give_up_s: float = 90.0) -> T:
    """Re-sends the same request until it is answered (bounded): the fault may last a while."""
    deadline = time.monotonic() + give_up_s
    while True:
        try:
            return await call()
        except grpc.aio.AioRpcError as err:
            if time.monotonic() > deadline or err.code() is grpc.StatusCode.INVALID_ARGUMENT:
                raise
            await asyncio.sleep(0.2)


class Orders:
    def __init__(self, ch: grpc.aio.Channel, out: IO[str], name: str) -> None:
        self.commands = cb_grpc.CommandBusStub(ch)
        self.queries = qb_grpc.QueryBusStub(ch)
        self.sagas = sg_grpc.SagaOrchestratorStub(ch)
        self.out = out
        self.name = name
        self.stop = asyncio.Event()

    def log(self, **record: Any) -> None:
        self.out.write(json.dumps({"t": time.time(), **record}) + "\n")

    async def command(self, payload: Message, order_id: str = "") -> cb.CommandResult:
        request = cb.Command(command_id=str(uuid.uuid4()), aggregate_id=order_id, payload=_any(payload))
        return await until_ok(lambda: self.commands.Dispatch(request, metadata=_md("commandbus"), timeout=10))

    async def read(self, order_id: str, position: int) -> o.Order:
        request = qb.QueryRequest(payload=_any(o.GetOrder(order_id=order_id)), min_position=position)
        reply = await until_ok(lambda: self.queries.Query(request, metadata=_md("querybus"), timeout=10))
        order = o.Order()
        reply.result.Unpack(order)
        return order

    async def one_order(self, items: int) -> None:
        created = await self.command(o.CreateOrder(customer_id=self.name))
        order_id = created.aggregate_id
        self.log(kind="command", order=order_id, n=1, position=created.position)
        for i in range(1, items + 1):
            add = o.AddItem(item_id=f"i{i}", name=f"item {i}", quantity=1, unit_price_cents=100)
            result = await self.command(add, order_id)
            self.log(kind="command", order=order_id, n=i + 1, position=result.position)
            seen = await self.read(order_id, result.position)
            self.log(kind="query", order=order_id, ryw=seen.applied_events >= i + 1)

    async def _get(self, saga_id: str) -> sg.Saga:
        return await self.sagas.Get(sg.GetSagaRequest(saga_id=saga_id), metadata=_md("saga"), timeout=10)

    async def _start(self, request: sg.StartSagaRequest) -> sg.Saga:
        return await self.sagas.Start(request, metadata=_md("saga"), timeout=10)

    async def final(self, saga_id: str, within_s: float = 60.0) -> sg.Saga:
        """The saga once it has ended (or as it is after ``within_s``)."""
        deadline = time.monotonic() + within_s
        while True:
            saga = await until_ok(lambda: self._get(saga_id))
            if saga.status not in (sg.SAGA_STATUS_RUNNING, sg.SAGA_STATUS_COMPENSATING) or (
                time.monotonic() > deadline
            ):
                return saga
            await asyncio.sleep(0.2)

    async def orders_loop(self, items: int) -> None:
        while not self.stop.is_set():
            await self.one_order(items)

    async def sagas_loop(self, rate: float) -> None:
        while not self.stop.is_set():
            data = struct_pb2.Struct()
            data.update({"order_id": f"{self.name}-{uuid.uuid4().hex[:8]}"})
            request = sg.StartSagaRequest(definition="order", idempotency_key=str(uuid.uuid4()), input=data)
            started = await until_ok(lambda r=request: self._start(r))  # type: ignore[misc]
            self.log(kind="saga", saga=started.saga_id)
            await asyncio.sleep(1.0 / rate)


async def run(args: argparse.Namespace) -> None:
    loop = asyncio.get_running_loop()
    with open(args.out, "a", buffering=1) as out:  # noqa: ASYNC230 - once, before any call
        async with grpc.aio.insecure_channel(args.target) as ch:
            gen = Orders(ch, out, args.name)
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, gen.stop.set)
            print("orderload running", flush=True)
            loops = [gen.orders_loop(args.items) for _ in range(args.workers)]
            await asyncio.gather(*loops, gen.sagas_loop(args.saga_rate))


async def verify(args: argparse.Namespace) -> int:
    with open(args.out) as f:  # noqa: ASYNC230 - the log is small and read once
        records = [json.loads(line) for line in f if line.endswith("}\n")]
    acked: dict[str, int] = {}
    for r in records:
        if r["kind"] == "command":
            acked[r["order"]] = max(acked.get(r["order"], 0), r["n"])
    problems: list[str] = [
        f"read-your-writes missed: {r}" for r in records if r["kind"] == "query" and not r["ryw"]
    ]
    async with grpc.aio.insecure_channel(args.target) as ch:
        gen = Orders(ch, sys.stdout, args.name)
        for order_id, count in acked.items():
            order = await gen.read(order_id, 0)
            if order.revision + 1 != count or order.applied_events != count:
                problems.append(
                    f"{order_id}: {count} acked, revision {order.revision}, applied {order.applied_events}"
                )
        sagas = [r["saga"] for r in records if r["kind"] == "saga"]
        for saga_id in sagas:
            saga = await gen.final(saga_id)
            if saga.status not in GOOD_END:
                problems.append(f"saga {saga_id}: {sg.SagaStatus.Name(saga.status)}")
    summary = {
        "orders": len(acked),
        "commands": sum(acked.values()),
        "sagas": len(sagas),
        "problems": problems,
    }
    print(json.dumps(summary), flush=True)
    return 1 if problems else 0


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("mode", choices=("run", "verify"))
    parser.add_argument("--target", default="127.0.0.1:15001", help="the local sidecar's outbound")
    parser.add_argument("--name", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--items", type=int, default=3, help="AddItem commands per order")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--saga-rate", type=float, default=2.0, help="sagas started per second")
    args = parser.parse_args()
    if args.mode == "run":
        asyncio.run(run(args))
    else:
        sys.exit(asyncio.run(verify(args)))

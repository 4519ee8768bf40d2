"""A small real saga participant process: any ``/pkg.Service/Method``, JSON bytes in and out.

Every business call is logged (method, ``x-idempotency-key``, request, wall-clock ns so logs
of several participants merge in order). A call whose key was seen before returns the
stored response and causes no new *effect* — the idempotent participant a saga needs.
The effect is recorded before a blocked call answers, as a slow real service would.

Behaviour is set per method through ``/saga.test.Control/*`` (JSON):
  Configure {"method": "/shop.Payments/Refund", "fail": "UNAVAILABLE", "times": -1, "block": false}
            (``times`` -1: always; ``fail`` null clears)
  Release   {"method": ...}   unblocks waiting calls of that method
  Log       {}                → {"calls": [...], "effects": [...]}
  Reset     {}                forgets rules, log and effects

Run: ``python -m tests.support.saga_participants --name payments --port N``;
prints ``participant payments listening on 127.0.0.1:N``.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

import grpc

from grpcmesh.sdk.server import Server

CONTROL = "/saga.test.Control/"
Handler = Callable[[str, bytes, grpc.aio.ServicerContext[Any, Any]], Awaitable[bytes]]


class Participant(grpc.GenericRpcHandler):
    def __init__(self, name: str) -> None:
        self.name = name
        self.reset()

    def reset(self) -> None:
        self.rules: dict[str, dict[str, Any]] = {}
        self.gates: dict[str, asyncio.Event] = {}
        self.calls: list[dict[str, Any]] = []
        self.effects: list[dict[str, Any]] = []
        self.responses: dict[str, dict[str, Any]] = {}

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        method: str = details.method  # type: ignore[attr-defined]
        if method.startswith("/grpc."):
            return None
        behaviour: Handler = self._control if method.startswith(CONTROL) else self._business
        # a partial of a coroutine function: grpc.aio sees it is async
        return grpc.unary_unary_rpc_method_handler(functools.partial(behaviour, method))  # type: ignore[arg-type]

    async def _business(self, method: str, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        meta = {k: v for k, v in context.invocation_metadata() or ()}
        key = str(meta.get("x-idempotency-key", ""))
        request = json.loads(raw or b"{}")
        self.calls.append({"method": method, "key": key, "request": request, "at": time.time_ns()})
        rule = self.rules.get(method, {})
        if rule.get("fail") and rule.get("times", -1) != 0:
            rule["times"] = rule.get("times", -1) - (1 if rule.get("times", -1) > 0 else 0)
            await context.abort(grpc.StatusCode[rule["fail"]], f"{self.name}: {method} told to fail")
        response = self.responses.get(key) if key else None
        if response is None:
            n = len(self.effects) + 1
            response = {"participant": self.name, "method": method, "id": f"{self.name}-{n}", "echo": request}
            self.effects.append({"method": method, "key": key, "at": time.time_ns()})
            if key:
                self.responses[key] = response
        if rule.get("block"):
            await self.gates.setdefault(method, asyncio.Event()).wait()
        return json.dumps(response).encode()

    async def _control(self, method: str, raw: bytes, context: grpc.aio.ServicerContext[Any, Any]) -> bytes:
        verb = method[len(CONTROL) :]
        body = json.loads(raw or b"{}")
        if verb == "Configure":
            self.rules[body["method"]] = {k: v for k, v in body.items() if k != "method"}
            if body.get("block"):
                self.gates[body["method"]] = asyncio.Event()
        elif verb == "Release":
            self.gates.setdefault(body["method"], asyncio.Event()).set()
        elif verb == "Reset":
            for gate in self.gates.values():
                gate.set()
            self.reset()
        elif verb != "Log":
            await context.abort(grpc.StatusCode.UNIMPLEMENTED, verb)
        return json.dumps({"calls": self.calls, "effects": self.effects}).encode()


async def _main(name: str, port: int) -> None:
    participant = Participant(name)

    def add(impl: Participant, server: grpc.aio.Server) -> None:
        server.add_generic_rpc_handlers((impl,))

    server = Server([(participant, add, f"shop.{name}")], port=port, name=name)
    await server.start()
    print(f"participant {name} listening on {server.address}", flush=True)
    await server.run_until_signal()


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--name", required=True)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)
    asyncio.run(_main(args.name, args.port))

"""``grpcmesh proto new pkg.v1.Service``: a contract, a server and a test to start from.

The scaffold follows the mesh conventions from the first line a user writes:
input validated with a ``BadRequest`` detail naming the field, read-only
methods marked ``NO_SIDE_EFFECTS`` so the mesh may retry them, and a server
built on :class:`grpcmesh.sdk.Server` (health, reflection, graceful stop).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from string import Template

__all__ = ["ScaffoldError", "ServiceName", "scaffold"]

_NAME = re.compile(r"^(?P<pkg>[a-z][a-z0-9_]*(?:\.[a-z][a-z0-9_]*)*)\.(?P<svc>[A-Z][A-Za-z0-9]*)$")


class ScaffoldError(ValueError):
    """The service name or output folder is unusable."""


@dataclass(frozen=True)
class ServiceName:
    """``shop.v1.Orders`` split into the parts the templates need."""

    package: str
    service: str

    @classmethod
    def parse(cls, text: str) -> ServiceName:
        m = _NAME.match(text)
        if not m:
            raise ScaffoldError(
                f"invalid service name {text!r}: expected lower.case.package.ServiceName, e.g. shop.v1.Orders"
            )
        return cls(m["pkg"], m["svc"])

    @property
    def module(self) -> str:
        """File stem: ``Orders`` → ``orders``, ``OrderHistory`` → ``order_history``."""
        return re.sub(r"(?<!^)(?=[A-Z])", "_", self.service).lower()

    @property
    def proto_path(self) -> str:
        return f"{self.package.replace('.', '/')}/{self.module}.proto"

    @property
    def full_name(self) -> str:
        return f"{self.package}.{self.service}"


_PROTO = Template("""\
// $full_name: scaffolded by `grpcmesh proto new`. Edit freely, then run
// `grpcmesh proto gen protos --out gen`.
syntax = "proto3";

package $package;

service $service {
  // Returns the message it was given. Read-only, so the mesh may retry it.
  rpc Echo(EchoRequest) returns (EchoResponse) {
    option idempotency_level = NO_SIDE_EFFECTS;
  }
}

message EchoRequest {
  // Text to echo back; must not be empty.
  string message = 1;
}

message EchoResponse {
  string message = 1;
  // Name of the service instance that answered.
  string served_by = 2;
}
""")

_SERVER = Template('''\
"""$full_name server, scaffolded by `grpcmesh proto new`.

Run: PYTHONPATH=gen python server.py --port 50051
"""

from __future__ import annotations

import argparse
import asyncio

import grpc
from $package import ${module}_pb2, ${module}_pb2_grpc

from grpcmesh.sdk import Server, Servicer, rich_status
from grpcmesh.sdk.errors import bad_request


class ${service}Servicer(${module}_pb2_grpc.${service}Servicer):
    def __init__(self, name: str) -> None:
        self.name = name

    async def Echo(self, request, context):  # noqa: N802 - gRPC method name
        if not request.message:
            await context.abort_with_status(
                rich_status(
                    grpc.StatusCode.INVALID_ARGUMENT,
                    "message: must not be empty",
                    [bad_request({"message": "must not be empty"})],
                )
            )
        return ${module}_pb2.EchoResponse(message=request.message, served_by=self.name)


def servicer(name: str = "$module") -> Servicer:
    return (${service}Servicer(name), ${module}_pb2_grpc.add_${service}Servicer_to_server, "$full_name")


async def main() -> None:
    parser = argparse.ArgumentParser(description="$full_name server")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=50051)
    parser.add_argument("--name", default="$module")
    args = parser.parse_args()
    server = Server([servicer(args.name)], host=args.host, port=args.port, name=args.name)
    await server.start()
    print(f"listening on {server.address}", flush=True)
    await server.run_until_signal()


if __name__ == "__main__":
    asyncio.run(main())
''')

_TEST = Template('''\
"""Calls the scaffolded $full_name over a real socket. Run: PYTHONPATH=gen:. pytest test_${module}.py"""

from __future__ import annotations

import asyncio

import grpc
from $package import ${module}_pb2, ${module}_pb2_grpc
from server import servicer

from grpcmesh.sdk import Server


async def _roundtrip() -> None:
    async with Server([servicer("test")]) as server:
        async with grpc.aio.insecure_channel(server.address) as channel:
            stub = ${module}_pb2_grpc.${service}Stub(channel)
            reply = await stub.Echo(${module}_pb2.EchoRequest(message="hi"), timeout=5)
            assert reply.message == "hi"
            try:
                await stub.Echo(${module}_pb2.EchoRequest(), timeout=5)
            except grpc.aio.AioRpcError as err:
                assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
                assert "message" in (err.details() or "")
            else:
                raise AssertionError("empty message was accepted")


def test_echo() -> None:
    asyncio.run(asyncio.wait_for(_roundtrip(), 30))
''')


def scaffold(name: str, out: Path) -> list[Path]:
    """Writes ``protos/<pkg>/<svc>.proto``, ``server.py`` and ``test_<svc>.py`` under ``out``."""
    svc = ServiceName.parse(name)
    values = {
        "package": svc.package,
        "service": svc.service,
        "module": svc.module,
        "full_name": svc.full_name,
    }
    files = {
        out / "protos" / svc.proto_path: _PROTO,
        out / "server.py": _SERVER,
        out / f"test_{svc.module}.py": _TEST,
    }
    existing = [p for p in files if p.exists()]
    if existing:
        raise ScaffoldError(f"refusing to overwrite {', '.join(map(str, existing))}")
    for path, template in files.items():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(template.substitute(values))
    return list(files)

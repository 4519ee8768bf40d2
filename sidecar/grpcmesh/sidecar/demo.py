"""The demo: scaffold a contract, generate it, serve it in a child process, call it.

Everything runs on loopback with ports chosen by the OS and is torn down on exit.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import os
import sys
import tempfile
from pathlib import Path

import grpc

from grpcmesh.sdk.protogen import generate
from grpcmesh.sdk.scaffold import scaffold

__all__ = ["run_demo"]


async def _start_server(workdir: Path) -> tuple[asyncio.subprocess.Process, str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(workdir / "gen"), str(workdir)])}
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        str(workdir / "server.py"),
        "--port",
        "0",
        "--name",
        "orders-1",
        cwd=workdir,
        env=env,
        stdout=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 30)
    if not line.startswith(b"listening on "):
        proc.kill()
        raise RuntimeError(f"server did not start: {line!r}")
    return proc, line.decode().split()[-1]


async def run_demo() -> int:
    with tempfile.TemporaryDirectory(prefix="grpcmesh-demo-") as tmp:
        workdir = Path(tmp)
        print("1. grpcmesh proto new shop.v1.Orders")
        for path in scaffold("shop.v1.Orders", workdir):
            print(f"   wrote {path.relative_to(workdir)}")
        print("2. grpcmesh proto gen protos --out gen")
        for path in generate(workdir / "protos", workdir / "gen").files:
            print(f"   wrote {path.relative_to(workdir)}")
        proc, address = await _start_server(workdir)
        print(f"3. server started (pid {proc.pid}) on {address}")
        try:
            sys.path.insert(0, str(workdir / "gen"))
            pb2 = importlib.import_module("shop.v1.orders_pb2")
            pb2_grpc = importlib.import_module("shop.v1.orders_pb2_grpc")
            async with grpc.aio.insecure_channel(address) as channel:
                stub = pb2_grpc.OrdersStub(channel)
                reply = await stub.Echo(pb2.EchoRequest(message="hello, mesh"), timeout=10)
                print(f"4. Echo -> message={reply.message!r} served_by={reply.served_by!r}")
                try:
                    await stub.Echo(pb2.EchoRequest(), timeout=10)
                except grpc.aio.AioRpcError as err:
                    print(f"5. Echo(empty) -> {err.code().name}: {err.details()}")
        finally:
            sys.path.remove(str(workdir / "gen"))
            proc.terminate()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(proc.wait(), 15)
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            print(f"6. server stopped (exit {proc.returncode})")
    return 0

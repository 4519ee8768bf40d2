"""``grpcmesh sidecar --workers N``: N worker processes on the same ports, one admin for all.

One Python process proxies on one core. With ``workers = N`` the supervisor reserves the
OUTBOUND and INBOUND ports (bound with SO_REUSEPORT, never listening: the port is held and
known, port 0 included, yet receives no connection) and starts N workers (worker.py) that
each listen on them with SO_REUSEPORT, so the kernel spreads new connections over the
workers, each with its own pools, clusters and event loop. The supervisor:

* serves the admin port: ``/metrics`` and ``/clusters`` merged from every worker's private
  admin (a unix socket; merge.py), ``/workers``, ``/ready`` (all workers ready), ``/stat``;
* registers in discovery once (the workers do not);
* restarts a worker that dies, logged, at most ``MAX_RESTARTS`` per slot in ``RESTART_WINDOW_S``
  (then it stops everything and exits 1: a crash loop is not hidden);
* on SIGTERM/SIGINT deregisters, forwards SIGTERM (each worker drains its calls), and kills
  what is left after the drain timeout. Workers run in their own process group, so a signal to
  the supervisor's group reaches them only through it, and they die with it (PDEATHSIG).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import pickle
import shutil
import signal
import socket
import sys
import tempfile
import time
from collections import deque
from collections.abc import Awaitable, Callable
from pathlib import Path

from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sidecar.app import register
from grpcmesh.sidecar.config import SidecarConfig
from grpcmesh.sidecar.worker_admin import SupervisorAdmin

__all__ = ["MAX_RESTARTS", "RESTART_WINDOW_S", "Supervisor", "run_workers"]

log = logging.getLogger("grpcmesh.sidecar.workers")

MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0
READY_TIMEOUT_S = 60.0


def reserve(listen: str, name: str) -> socket.socket:
    """A socket bound to ``listen`` with SO_REUSEPORT, not listening: holds the port for the workers.

    A probe without SO_REUSEPORT binds first, so a port already taken (by anything, another
    multi-worker sidecar's reservation included) is an error here rather than shared silently.
    """
    host, port = split_host_port(listen, min_port=0)
    host = host.strip("[]")
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    addr = host or ("::" if family == socket.AF_INET6 else "0.0.0.0")
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((addr, port))
            port = probe.getsockname()[1]
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        sock.bind((addr, port))
    except OSError as err:
        sock.close()
        raise OSError(f"{name}: cannot listen on {listen}: {err.strerror or err}") from err
    return sock


def _with_port(listen: str, sock: socket.socket) -> str:
    host, _ = split_host_port(listen, min_port=0)
    return f"{host}:{sock.getsockname()[1]}"


class Supervisor:
    def __init__(self, cfg: SidecarConfig) -> None:
        self.cfg = cfg
        out = reserve(cfg.outbound, "outbound")
        try:
            inb = reserve(cfg.inbound, "inbound")
        except OSError:
            out.close()
            raise
        self._reserved = [out, inb]
        self._dir = Path(tempfile.mkdtemp(prefix="grpcmesh-sidecar-"))  # the workers' admin sockets
        self.ports = {"outbound": out.getsockname()[1], "inbound": inb.getsockname()[1]}
        # what each worker runs: the concrete ports, SO_REUSEPORT, and one process (no recursion)
        self.worker_cfg = dataclasses.replace(
            cfg,
            outbound=_with_port(cfg.outbound, out),
            inbound=_with_port(cfg.inbound, inb),
            reuse_port=True,
            workers=1,
        )
        self.procs: list[asyncio.subprocess.Process | None] = [None] * cfg.workers
        self.restarts: list[deque[float]] = [deque() for _ in range(cfg.workers)]
        self.restarted = 0
        self.admin = SupervisorAdmin(cfg, self.pids, self.socket_path, lambda: self.restarted)
        self.stopping = False
        self.failed = asyncio.Event()
        self._monitors: list[asyncio.Task[None]] = []
        self._deregister: Callable[[], Awaitable[None]] | None = None

    def socket_path(self, index: int) -> str:
        return str(self._dir / f"worker-{index}.sock")

    def pids(self) -> list[int]:
        return [p.pid if p is not None else 0 for p in self.procs]

    async def _spawn(self, index: int) -> asyncio.subprocess.Process:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.socket_path(index))
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "grpcmesh.sidecar.worker",
            str(index),
            self.socket_path(index),
            str(os.getpid()),
            stdin=asyncio.subprocess.PIPE,
            start_new_session=True,  # signals to our group reach workers only through us
        )
        assert proc.stdin is not None
        proc.stdin.write(pickle.dumps(self.worker_cfg))
        await proc.stdin.drain()
        proc.stdin.close()
        self.procs[index] = proc
        log.info("worker %d started pid=%d", index, proc.pid)
        return proc

    async def _monitor(self, index: int) -> None:
        """Restarts worker ``index`` whenever it exits, unless stopping or crash-looping."""
        while True:
            proc = self.procs[index]
            assert proc is not None
            code = await proc.wait()
            if self.stopping:
                return
            now = time.monotonic()
            window = self.restarts[index]
            while window and now - window[0] > RESTART_WINDOW_S:
                window.popleft()
            if len(window) >= MAX_RESTARTS:
                log.error(
                    "worker %d exited (status %s) %d times in %.0fs: giving up, stopping the sidecar",
                    index,
                    code,
                    len(window) + 1,
                    RESTART_WINDOW_S,
                )
                self.failed.set()
                return
            window.append(now)
            self.restarted += 1
            log.warning("worker %d pid=%d exited (status %s): restarting", index, proc.pid, code)
            try:
                await self._spawn(index)
            except OSError as err:  # cannot fork or exec: as bad as a crash loop
                log.error("worker %d cannot be restarted (%s): stopping the sidecar", index, err)
                self.failed.set()
                return

    async def start(self) -> None:
        for index in range(self.cfg.workers):
            await self._spawn(index)
        await self.admin.start()
        await self._wait_ready()
        self._monitors = [asyncio.create_task(self._monitor(i)) for i in range(self.cfg.workers)]
        self._deregister = await register(self.cfg, [], self.ports["inbound"])
        log.info(
            "sidecar ready service=%s outbound=%d inbound=%d admin=%d app=%s workers=%d",
            self.cfg.service,
            self.ports["outbound"],
            self.ports["inbound"],
            self.admin.port,
            self.cfg.app,
            self.cfg.workers,
        )

    async def _wait_ready(self) -> None:
        deadline = time.monotonic() + READY_TIMEOUT_S
        for index, proc in enumerate(self.procs):
            assert proc is not None
            while not await self.admin.worker_ready(index):
                if proc.returncode is not None:
                    raise OSError(f"worker {index} exited (status {proc.returncode}) before it was ready")
                if time.monotonic() > deadline:
                    raise OSError(f"worker {index} not ready after {READY_TIMEOUT_S:.0f}s")
                await asyncio.sleep(0.05)

    async def stop(self) -> None:
        """SIGTERM to every worker (each drains), SIGKILL to any left after the drain timeout."""
        self.stopping = True
        for task in self._monitors:
            task.cancel()
        if self._deregister is not None:
            with contextlib.suppress(Exception):
                await self._deregister()
        live = [p for p in self.procs if p is not None and p.returncode is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        waits = asyncio.gather(*(p.wait() for p in live))
        try:
            await asyncio.wait_for(waits, self.cfg.drain_timeout_s + 5.0)
        except TimeoutError:
            for proc in live:
                if proc.returncode is None:
                    log.warning("worker pid=%d still running after the drain: killed", proc.pid)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
            await asyncio.gather(*(p.wait() for p in live))
        await self.admin.close()
        for sock in self._reserved:
            sock.close()
        shutil.rmtree(self._dir, ignore_errors=True)
        log.info("sidecar drained (%d workers)", len(self.procs))

    async def run_until_signal(self) -> int:
        loop = asyncio.get_running_loop()
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await self.start()
            signalled = asyncio.create_task(stop.wait())
            failed = asyncio.create_task(self.failed.wait())
            await asyncio.wait({signalled, failed}, return_when=asyncio.FIRST_COMPLETED)
            signalled.cancel()
            failed.cancel()
            if stop.is_set():
                log.info(
                    "signal received: draining %d workers (up to %.1fs)",
                    len(self.procs),
                    self.cfg.drain_timeout_s,
                )
        finally:
            await self.stop()
        return 1 if self.failed.is_set() else 0


async def run_workers(cfg: SidecarConfig) -> int:
    return await Supervisor(cfg).run_until_signal()

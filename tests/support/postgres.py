"""A real PostgreSQL server for tests: initdb into a temp dir, a free loopback port, fsync on.

One server per test session (initdb takes a few seconds); each test gets a fresh
database (``CREATE DATABASE``) so tests cannot see each other's rows. PostgreSQL
refuses to run as root, so under root the server runs as the ``postgres`` user
(or ``nobody``) through ``setpriv``, owning its temp dir. When the binaries are
missing the tests skip, except under ``CI=true`` where they fail.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.support.procs import LOOPBACK, ManagedProcess, free_port, wait_for

__all__ = ["PostgresServer", "find_postgres_bin", "postgres_dsn", "postgres_server"]


def find_postgres_bin() -> Path | None:
    """The folder holding both ``initdb`` and ``postgres`` (PATH, Debian's layout, /usr/local/bin)."""
    candidates: list[Path] = []
    found = shutil.which("postgres")
    if found:
        candidates.append(Path(found).resolve().parent)
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)]
    candidates.append(Path("/usr/local/bin"))
    for folder in candidates:
        if (folder / "initdb").exists() and (folder / "postgres").exists():
            return folder
    return None


class PostgresServer:
    """A throw-away PostgreSQL cluster listening on ``127.0.0.1:port``."""

    def __init__(self, bin_dir: Path) -> None:
        self.bin_dir = bin_dir
        self.port = free_port()
        self.root = Path(tempfile.mkdtemp(prefix="grpcmesh-pg-"))
        self.data = self.root / "data"
        self.sockets = self.root / "sock"
        self._proc: ManagedProcess | None = None
        self._user = self._run_as()

    @staticmethod
    def _run_as() -> pwd.struct_passwd | None:
        if os.geteuid() != 0:
            return None
        for name in ("postgres", "nobody"):
            with contextlib.suppress(KeyError):
                return pwd.getpwnam(name)
        raise RuntimeError("running as root and no 'postgres' or 'nobody' user to run PostgreSQL as")

    def _argv(self, *argv: str) -> list[str]:
        if self._user is None:
            return list(argv)
        return [
            "setpriv",
            f"--reuid={self._user.pw_uid}",
            f"--regid={self._user.pw_gid}",
            "--clear-groups",
            *argv,
        ]

    def start(self) -> PostgresServer:
        self.sockets.mkdir()
        if self._user is not None:
            for path in (self.root, self.sockets):
                os.chown(path, self._user.pw_uid, self._user.pw_gid)
        subprocess.run(
            self._argv(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ),
            check=True,
            capture_output=True,
            timeout=120,
        )
        self._proc = ManagedProcess(
            self._argv(
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-c",
                f"listen_addresses={LOOPBACK}",
                "-c",
                f"unix_socket_directories={self.sockets}",
                "-c",
                "fsync=on",
                "-c",
                "synchronous_commit=on",
                "-c",
                "max_connections=300",
            ),
            self.root / "postgres.log",
        )
        wait_for(self._ready, timeout=60, what="PostgreSQL to accept connections")
        return self

    def _ready(self) -> bool:
        import psycopg

        if self._proc is not None and not self._proc.alive():
            raise RuntimeError(f"postgres exited:\n{self._proc.output()[-3000:]}")
        try:
            with psycopg.connect(self.dsn("postgres"), connect_timeout=2):
                return True
        except psycopg.OperationalError:
            return False

    def dsn(self, database: str) -> str:
        return f"postgresql://postgres@{LOOPBACK}:{self.port}/{database}"

    def create_database(self) -> str:
        """A new empty database; returns its DSN."""
        import psycopg

        name = f"t_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.dsn("postgres"), autocommit=True) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
        return self.dsn(name)

    def stop(self) -> None:
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.signal(
                    signal.SIGQUIT
                )  # "immediate" shutdown: no checkpoint, the data is thrown away
            self._proc.stop(timeout=20)
            self._proc = None
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """One PostgreSQL server for the session; skips (fails under CI=true) without binaries."""
    bin_dir = find_postgres_bin()
    if bin_dir is None:
        message = "PostgreSQL binaries (initdb, postgres) not found; install Debian's postgresql package"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    server = PostgresServer(bin_dir)
    try:
        yield server.start()
    finally:
        server.stop()


@pytest.fixture
def postgres_dsn(postgres_server: PostgresServer) -> str:
    """DSN of a fresh, empty database for one test."""
    return postgres_server.create_database()

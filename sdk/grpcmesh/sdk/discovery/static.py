"""Static-file registry: the embedded default when no Consul address is configured.

The file is TOML (any suffix but ``.json``) or JSON (``.json``)::

    # registry.toml
    [[services.orders]]
    address = "127.0.0.1"     # required: host name or IP
    port = 50051              # required: 1..65535
    tags = ["v1"]             # optional, default []
    meta = { zone = "a" }     # optional string → string, default {}
    weight = 2                # optional positive int, default 1
    id = "orders-1"           # optional, default "<service>-<address>-<port>"

    # registry.json
    {"services": {"orders": [{"address": "127.0.0.1", "port": 50051}]}}

A background task polls the file's (mtime, size, inode) every ``interval``
seconds (bounded: 0.01 s .. 60 s) and reloads it on change, waking the
watchers of services whose endpoints changed. A file that does not parse or
does not match the schema keeps the previous endpoints; the error names the
file and the line (and column) or the offending field, is logged once and is
kept in :attr:`StaticResolver.last_error` until a good version is loaded. A
missing file is an empty registry (it is picked up when it appears).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import re
import tomllib
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import Any

from grpcmesh.sdk.discovery.base import Endpoint, Resolution
from grpcmesh.sdk.discovery.published import Published
from grpcmesh.sdk.waiting import cancel_and_wait

__all__ = ["RegistryFileError", "StaticResolver", "parse_registry"]

log = logging.getLogger("grpcmesh.discovery.static")

_KEYS = "address, port, tags, meta, weight, id"
_UNKNOWN = re.compile(r"unknown key '([^']+)'")
_TOML_POS = re.compile(r"\(at line (\d+), column (\d+)\)")


class RegistryFileError(ValueError):
    """The registry file is malformed; ``str()`` reads ``path:line:column: why``."""

    def __init__(self, path: Path, message: str, line: int | None = None, column: int | None = None) -> None:
        where = f"{path}:{line}:{column}" if line is not None else str(path)
        super().__init__(f"{where}: {message}")
        self.path = path
        self.line = line
        self.column = column


def _load_document(path: Path, text: str) -> Any:
    if path.suffix == ".json":
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise RegistryFileError(path, f"invalid JSON: {err.msg}", err.lineno, err.colno) from err
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        pos = _TOML_POS.search(str(err))
        line, col = (int(pos.group(1)), int(pos.group(2))) if pos else (None, None)
        msg = _TOML_POS.sub("", str(err)).strip()
        raise RegistryFileError(path, f"invalid TOML: {msg}", line, col) from err


def _header_line(text: str, service: str, nth: int) -> int | None:
    """Line of the ``nth`` ``[[services.<service>]]`` table (TOML), to point schema errors at it."""
    pattern = re.compile(rf"^\s*\[\[\s*services\s*\.\s*(\"?){re.escape(service)}\1\s*\]\]")
    seen = 0
    for number, line in enumerate(text.splitlines(), start=1):
        if pattern.match(line):
            if seen == nth:
                return number
            seen += 1
    return None


def _key_line(text: str, header: int, key: str) -> int:
    """Line of ``key = ...`` in the table that starts at line ``header`` (else the header's line)."""
    lines = text.splitlines()
    for number in range(header + 1, len(lines) + 1):
        line = lines[number - 1].strip()
        if line.startswith("["):
            break
        if re.match(rf"\"?{re.escape(key)}\"?\s*=", line):
            return number
    return header


def _endpoint(service: str, raw: Any, where: str) -> Endpoint:
    if not isinstance(raw, Mapping):
        raise ValueError(f"{where}: expected a table/object with address and port")
    unknown = set(raw) - {"address", "port", "tags", "meta", "weight", "id"}
    if unknown:  # first: a typo (prot = 50051) is an unknown key, not a missing port
        raise ValueError(f"{where}: unknown key {', '.join(map(repr, sorted(unknown)))} (valid: {_KEYS})")
    address, port = raw.get("address"), raw.get("port")
    if not isinstance(address, str) or not address:
        raise ValueError(f"{where}.address: expected a non-empty string")
    if not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536:
        raise ValueError(f"{where}.port: expected an integer 1..65535, got {port!r}")
    tags, meta, weight = raw.get("tags", []), raw.get("meta", {}), raw.get("weight", 1)
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise ValueError(f"{where}.tags: expected a list of strings")
    if not isinstance(meta, Mapping) or not all(isinstance(v, str) for v in meta.values()):
        raise ValueError(f"{where}.meta: expected a table of strings")
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 1:
        raise ValueError(f"{where}.weight: expected a positive integer, got {weight!r}")
    return Endpoint(
        address=address,
        port=port,
        tags=tuple(tags),
        meta=MappingProxyType(dict(meta)),
        weight=weight,
        id=str(raw.get("id") or f"{service}-{address}-{port}"),
    )


def parse_registry(path: Path, text: str) -> dict[str, tuple[Endpoint, ...]]:
    """Service name → endpoints; raises :class:`RegistryFileError` naming file and line/field."""
    doc = _load_document(path, text)
    services = doc.get("services", {}) if isinstance(doc, Mapping) else None
    if not isinstance(services, Mapping):
        raise RegistryFileError(path, "expected a top-level 'services' table/object")
    result: dict[str, tuple[Endpoint, ...]] = {}
    for name, entries in services.items():
        if not isinstance(entries, list):
            raise RegistryFileError(path, f"services.{name}: expected a list of endpoints")
        endpoints = []
        for i, raw in enumerate(entries):
            try:
                endpoints.append(_endpoint(name, raw, f"services.{name}[{i}]"))
            except ValueError as err:
                line = None if path.suffix == ".json" else _header_line(text, name, i)
                typo = _UNKNOWN.search(str(err))
                if line is not None and typo:
                    line = _key_line(text, line, typo.group(1))
                raise RegistryFileError(path, str(err), line, 1 if line else None) from err
        result[name] = tuple(endpoints)
    return result


def _clamp_interval(interval: float) -> float:
    return min(60.0, max(0.01, interval))


class StaticResolver:
    """:class:`~grpcmesh.sdk.discovery.Resolver` over a TOML/JSON file, reloaded on change."""

    def __init__(self, path: str | os.PathLike[str], *, interval: float = 1.0) -> None:
        self.path = Path(path)
        self.interval = _clamp_interval(interval)
        self.last_error: RegistryFileError | None = None
        self.reloads = 0
        self._services: dict[str, tuple[Endpoint, ...]] = {}
        self._published: dict[str, Published] = {}
        self._stamp: tuple[int, int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self.reload()

    def _file_stamp(self) -> tuple[int, int, int] | None:
        try:
            st = self.path.stat()
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def reload(self) -> bool:
        """Reads the file now; False (previous endpoints kept, error logged) when malformed."""
        self._stamp = self._file_stamp()
        try:
            text = self.path.read_text(encoding="utf-8") if self._stamp is not None else ""
            services = parse_registry(self.path, text) if text.strip() else {}
        except (RegistryFileError, OSError, UnicodeDecodeError) as err:
            error = err if isinstance(err, RegistryFileError) else RegistryFileError(self.path, str(err))
            if self.last_error is None or str(error) != str(self.last_error):
                log.error("registry file rejected, keeping previous endpoints: %s", error)
            self.last_error = error
            return False
        if self._stamp is None and self._services:
            log.warning("registry file %s disappeared; registry is now empty", self.path)
        self.last_error = None
        self.reloads += 1
        self._services = services
        for name, pub in self._published.items():
            pub.publish(services.get(name, ()))
        return True

    def _ensure_polling(self) -> None:
        if self._closed:
            raise RuntimeError("StaticResolver is closed")
        if self._task is None:
            self._task = asyncio.create_task(self._poll(), name=f"static-registry:{self.path.name}")

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            if self._file_stamp() != self._stamp:
                self.reload()

    def _pub(self, service: str) -> Published:
        self._ensure_polling()
        pub = self._published.get(service)
        if pub is None:
            pub = self._published[service] = Published(service)
            pub.publish(self._services.get(service, ()))
        return pub

    async def resolve(self, service: str) -> Resolution:
        return self._pub(service).current

    async def watch(self, service: str) -> AsyncIterator[Resolution]:
        async for resolution in self._pub(service).changes():
            yield resolution

    def services(self) -> dict[str, tuple[Endpoint, ...]]:
        """Everything the file currently lists (for the admin page)."""
        return dict(self._services)

    async def close(self) -> None:
        self._closed = True
        await cancel_and_wait(self._task)
        for pub in self._published.values():
            pub.close()

    async def __aenter__(self) -> StaticResolver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

"""A minimal HTTP client for a Consul agent, with a hard cap on its connections.

Why not py-consul here: its aiohttp session allows 100 connections and every
held blocking query pins one, so a resolver with one query per service starves
from the 101st service on (and Consul answers 429 past its own per-client limit
of 200, to every client on the host). This client owns one aiohttp connector
whose ``limit`` is the resolver's stated bound; callers decide what runs on it.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from typing import Any

import aiohttp

__all__ = ["AgentError", "AgentHTTP"]


class AgentError(Exception):
    """The agent answered with an error status (``status``) or not at all (``status`` 0)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(f"consul HTTP {status}: {message}" if status else f"consul unreachable: {message}")
        self.status = status


class AgentHTTP:
    """GETs JSON from one agent over at most ``max_connections`` TCP connections."""

    def __init__(
        self,
        url: str,
        *,
        max_connections: int,
        token: str | None = None,
        on_request: Callable[[], None] = lambda: None,
    ) -> None:
        parts = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
        scheme = "https" if parts.scheme == "https" else "http"
        self.base = f"{scheme}://{parts.hostname or '127.0.0.1'}:{parts.port or 8500}"
        self.max_connections = max_connections
        self._headers = {"X-Consul-Token": token} if token else {}
        self._on_request = on_request
        self._session: aiohttp.ClientSession | None = None

    def _open(self) -> aiohttp.ClientSession:
        """Created lazily: an aiohttp session belongs to the loop it was made in."""
        if self._session is None:
            connector = aiohttp.TCPConnector(limit=self.max_connections, limit_per_host=self.max_connections)
            self._session = aiohttp.ClientSession(connector=connector, headers=self._headers)
        return self._session

    async def get(
        self, path: str, params: Mapping[str, str | None], *, seconds: float
    ) -> tuple[int | None, Any]:
        """``(X-Consul-Index, decoded JSON)`` within ``seconds``; :class:`AgentError` on any failure."""
        query = {k: v for k, v in params.items() if v is not None}
        self._on_request()
        try:
            async with self._open().get(
                self.base + path, params=query, timeout=aiohttp.ClientTimeout(total=seconds)
            ) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise AgentError(resp.status, body[:200].decode("utf-8", "replace").strip())
                index = resp.headers.get("X-Consul-Index")
        except (aiohttp.ClientError, TimeoutError, OSError) as err:
            raise AgentError(0, f"{type(err).__name__}: {err}") from err
        try:
            return (int(index) if index and index.isdigit() else None), json.loads(body)
        except ValueError as err:
            raise AgentError(resp.status, f"undecodable answer: {err}") from err

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

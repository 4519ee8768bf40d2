"""A py-consul asyncio client, counting its requests: used for registration.

Registration makes a handful of PUTs per instance lifetime; py-consul's API
covers them well. Discovery, which must bound its connections to the agent,
uses :mod:`grpcmesh.sdk.discovery.consul_http` instead.
"""

from __future__ import annotations

import urllib.parse
import warnings
from collections.abc import Callable
from typing import Any

import consul
import consul.aio

__all__ = ["REGISTRATION_CONNECTIONS", "consul_client"]

REGISTRATION_CONNECTIONS = 2
"""Connections a registration client may hold to its agent (py-consul's default is 100):
its requests are few and background, so queueing them costs nothing and keeps a process's
total to the agent bounded (discovery's ``max_reads + 1`` plus this)."""


class _CountingHTTPClient(consul.aio.HTTPClient):  # type: ignore[misc]
    """py-consul's aiohttp transport, counting each request it sends."""

    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        with warnings.catch_warnings():  # py-consul passes aiohttp's deprecated ssl kwargs
            warnings.simplefilter("ignore", DeprecationWarning)
            super().__init__(*args, **kwargs)
        self._on_request = on_request

    async def _request(self, *args: Any, **kwargs: Any) -> Any:
        self._on_request()
        return await super()._request(*args, **kwargs)


class _CountingConsul(consul.aio.Consul):  # type: ignore[misc]
    def __init__(self, *args: Any, on_request: Callable[[], None], **kwargs: Any) -> None:
        self._on_request = on_request
        super().__init__(*args, **kwargs)

    def http_connect(
        self, host: str, port: int, scheme: str, verify: bool | str = True, cert: Any = None
    ) -> Any:
        return _CountingHTTPClient(
            host,
            port,
            scheme,
            verify=verify,
            cert=cert,
            connections_timeout=self.connections_timeout,
            connections_limit=REGISTRATION_CONNECTIONS,
            on_request=self._on_request,
        )


def consul_client(
    url: str,
    *,
    token: str | None = None,
    datacenter: str | None = None,
    timeout: float = 10.0,
    on_request: Callable[[], None] = lambda: None,
) -> Any:
    """A py-consul asyncio client for ``http(s)://host:port``; call inside the running loop."""
    parts = urllib.parse.urlsplit(url if "//" in url else f"http://{url}")
    scheme = "https" if parts.scheme == "https" else "http"
    return _CountingConsul(
        host=parts.hostname or "127.0.0.1",
        port=parts.port or 8500,
        scheme=scheme,
        token=token,
        dc=datacenter,
        verify=scheme == "https",
        connections_timeout=timeout,
        on_request=on_request,
    )

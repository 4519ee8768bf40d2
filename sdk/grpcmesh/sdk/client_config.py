"""Client configuration: one frozen value resolved from arguments, then the environment.

``ClientConfig.build()`` validates everything up front — the sidecar address
(a bad ``GRPCMESH_SIDECAR`` fails at construction, naming the variable and the
problem), the deadline, the mode — so a misconfigured client never reaches the
first call. The same value configures sidecar and direct mode.
"""

from __future__ import annotations

import os
import tomllib
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, TypedDict, Unpack

from grpcmesh.sdk.cluster import ClusterConfig
from grpcmesh.sdk.direct import Discovery
from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.retry import RetryConfig
from grpcmesh.sdk.settings import ConfigError, build_dataclass

__all__ = [
    "DEFAULT_SIDECAR",
    "DISCOVERY_ENV",
    "SIDECAR_ENV",
    "ClientConfig",
    "ClientOptions",
    "validate_address",
]

SIDECAR_ENV = "GRPCMESH_SIDECAR"
DISCOVERY_ENV = "GRPCMESH_DISCOVERY"
DEFAULT_SIDECAR = "127.0.0.1:15001"


class ClientOptions(TypedDict, total=False):
    """Keyword options of the clients and :meth:`ClientConfig.build`."""

    sidecar: str | None
    """Local sidecar ``host:port``; default ``$GRPCMESH_SIDECAR`` or ``127.0.0.1:15001``."""
    direct: bool
    """Resolve and balance in-process (needs ``discovery`` or ``$GRPCMESH_DISCOVERY``)."""
    discovery: Discovery | None
    """``consul://…`` / ``http://…`` / ``file://…``, a ``Resolver``, or ``{service: ["host:port"]}``."""
    timeout: float | None
    """Default deadline in seconds for calls made without one (``None``: no default); 30."""
    retry: RetryConfig | bool | None
    """Client retries: off through a sidecar, on in direct mode, unless set."""
    idempotent: Sequence[str]
    """fnmatch patterns of methods safe to retry besides those the proto declares."""
    cluster: ClusterConfig | None
    """Direct mode: balancer, breaker and channel settings (its ``retry`` comes from ``retry``)."""


def validate_address(value: str, source: str = "sidecar") -> str:
    """``value`` if it is a dialable ``host:port`` / ``[v6]:port`` / ``unix:path``, else ``ValueError``."""
    address = value.strip()
    if address.startswith("unix:") and len(address) > len("unix:"):
        return address
    hint = f"{source}={value!r} is not a valid sidecar address (expected host:port such as {DEFAULT_SIDECAR})"
    if "://" in address:
        raise ValueError(f"{hint}: drop the URL scheme")
    try:
        split_host_port(address)
    except ValueError as err:
        raise ValueError(f"{hint}: {err}") from None
    return address


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs, resolved once (arguments first, then the environment)."""

    service: str = ""
    sidecar: str = DEFAULT_SIDECAR
    sidecar_source: str = "sidecar"
    direct: bool = False
    discovery: Discovery | None = None
    timeout: float | None = 30.0
    retry: RetryConfig | None = None
    idempotent: tuple[str, ...] = ()
    cluster: ClusterConfig = field(default_factory=ClusterConfig)

    @classmethod
    def build(cls, service: str = "", **options: Unpack[ClientOptions]) -> ClientConfig:
        """Validates the options and fills defaults from ``GRPCMESH_SIDECAR`` / ``GRPCMESH_DISCOVERY``."""
        sidecar, discovery = options.get("sidecar"), options.get("discovery")
        timeout, retry = options.get("timeout", 30.0), options.get("retry")
        direct = options.get("direct", False) or discovery is not None
        if timeout is not None and timeout <= 0:
            raise ValueError(f"timeout must be positive seconds or None, got {timeout!r}")
        if direct and discovery is None:
            discovery = os.environ.get(DISCOVERY_ENV) or None
            if discovery is None:
                raise ValueError(
                    f"direct mode needs discovery= (a consul:// or file:// URL) or {DISCOVERY_ENV}"
                )
        source = "sidecar" if sidecar is not None else SIDECAR_ENV
        address = sidecar if sidecar is not None else os.environ.get(SIDECAR_ENV, DEFAULT_SIDECAR)
        if not direct:
            address = validate_address(address, source)
        # Sidecar mode: no client retries unless asked (the sidecar retries). Direct mode: the
        # cluster retries with RetryConfig() unless retry=False.
        base = options.get("cluster") or ClusterConfig()
        if isinstance(retry, RetryConfig):
            policy: RetryConfig | None = retry
        elif retry is None and direct:
            policy = base.retry
        else:
            policy = RetryConfig() if retry is True else None
        cluster = replace(base, retry=policy or RetryConfig(max_attempts=1))
        idempotent = tuple(options.get("idempotent", ()))
        return cls(service, address, source, direct, discovery, timeout, policy, idempotent, cluster)

    @classmethod
    def from_file(
        cls, path: str | os.PathLike[str], service: str = "", **options: Unpack[ClientOptions]
    ) -> ClientConfig:
        """The client's reading of a sidecar TOML file, so one file configures both modes.

        ``outbound`` is the sidecar address; ``[client] direct = true`` switches to direct
        mode over ``consul`` (plus ``consul_token``) or the ``[endpoints]`` table; ``[cluster]``
        (``balancer``, ``[cluster.breaker]``, ``[cluster.retry]``) sets the in-process policies;
        ``[client]`` may also set ``timeout`` and ``idempotent``. Keyword options win over the file.
        """
        try:
            data = tomllib.loads(Path(path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"client config {os.fspath(path)!r}: {err}") from None
        client = dict(data.get("client", {}))
        found: ClientOptions = {}
        if "outbound" in data:
            found["sidecar"] = str(data["outbound"])
        if client.get("direct"):
            found["direct"] = True
            found["discovery"] = _registry(data)
        if "timeout" in client:
            found["timeout"] = float(client["timeout"])
        if "idempotent" in client:
            found["idempotent"] = tuple(client["idempotent"])
        if "cluster" in data:
            found["cluster"] = _cluster(dict(data["cluster"]))
        found.update(options)
        return cls.build(service or str(data.get("service", "")), **found)


def _registry(data: dict[str, Any]) -> Discovery:
    if data.get("consul"):
        url = str(data["consul"])
        token = data.get("consul_token") or os.environ.get("GRPCMESH_CONSUL_TOKEN")
        return f"{url}{'&' if '?' in url else '?'}token={token}" if token else url
    if data.get("endpoints"):
        return {name: list(addresses) for name, addresses in dict(data["endpoints"]).items()}
    raise ValueError("client config: [client] direct = true needs consul = URL or an [endpoints] table")


def _cluster(table: dict[str, Any]) -> ClusterConfig:
    """``[cluster]`` with its ``breaker`` / ``retry`` sub-tables, coerced as the sidecar does."""
    try:
        cluster: ClusterConfig = build_dataclass(ClusterConfig, table, "cluster")
    except ConfigError as err:
        raise ValueError(f"client config [cluster]: {err}") from None
    return cluster

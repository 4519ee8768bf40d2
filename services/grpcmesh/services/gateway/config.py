"""Gateway configuration: one TOML file (plus CLI flags) → one frozen :class:`GatewayConfig`.

Every table is checked up front and an unknown key names itself, so a typo in
``[rate_limit]`` fails at start instead of silently disabling the limit. Secrets
never live in the file: the HS256 secret is read from the environment variable
``[auth] secret_env`` names, the RS256 key from ``public_key_file``.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from grpcmesh.sdk.config_sources import toml_origins
from grpcmesh.sdk.direct import Discovery
from grpcmesh.services.gateway.auth import AuthConfig
from grpcmesh.services.gateway.connections import ConnectionLimits
from grpcmesh.services.gateway.ratelimit import Limit

__all__ = ["DEFAULT_PROTOS", "DEFAULT_SERVICES", "GatewayConfig", "RoutePolicy", "load_config"]

# The grpcmesh contracts, plus the orders example's messages so the README's command and
# query examples (google.protobuf.Any payloads with "@type") parse out of the box.
DEFAULT_PROTOS: tuple[str, ...] = (
    *(f"grpcmesh.api.v1.{name}_pb2" for name in ("eventstore", "commandbus", "querybus", "saga")),
    "grpcmesh.api.examples.orders.v1.orders_pb2",
)

# The mesh names the grpcmesh services run under (the sidecar --service and registry names
# the README uses); [services] in the config adds to and overrides these.
DEFAULT_SERVICES: Mapping[str, str] = {
    "grpcmesh.api.v1.EventStore": "eventstore",
    "grpcmesh.api.v1.CommandBus": "commandbus",
    "grpcmesh.api.v1.QueryBus": "querybus",
    "grpcmesh.api.v1.SagaOrchestrator": "saga",
}

DEFAULT_LIMIT = Limit(rate=50.0, burst=100)
AUTH_FAILURE_LIMIT = Limit(rate=0.2, burst=20)  # failed authentications per client address


@dataclass(frozen=True)
class RoutePolicy:
    """Per-route options (``[routes."pkg.Service.Method"]``); ``None`` means the gateway default."""

    public: bool = False
    scopes: tuple[str, ...] = ()
    limit: Limit | None = None
    cache_ttl: float | None = None


@dataclass(frozen=True)
class GatewayConfig:
    listen: str = "127.0.0.1:8080"
    protos: tuple[str, ...] = DEFAULT_PROTOS
    sidecar: str | None = None
    """Local sidecar address (default: the SDK's ``$GRPCMESH_SIDECAR`` / 127.0.0.1:15001)."""
    discovery: Discovery | None = None
    """Direct mode: a discovery URL or ``{service: [host:port]}`` instead of a sidecar."""
    services: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_SERVICES))
    """Proto service full name → mesh service name (default: DEFAULT_SERVICES, else the proto name)."""
    timeout: float = 10.0
    max_timeout: float = 60.0
    auth: AuthConfig | None = None
    """``None``: no authentication at all (every route public) — for local development."""
    limit: Limit | None = DEFAULT_LIMIT
    rate_limit_backend: str = "memory"
    cache_ttl: float = 2.0
    cache_entries: int = 1024
    trust_forwarded_for: bool = False
    """Key anonymous callers by the first ``X-Forwarded-For`` address (only behind a trusted proxy)."""
    access_log: bool = False
    routes: Mapping[str, RoutePolicy] = field(default_factory=dict)
    connections: ConnectionLimits = field(default_factory=ConnectionLimits)
    """``[limits]`` header_timeout, idle_timeout, max_connections."""
    body_timeout: float = 30.0
    """Seconds to receive a request body (408 after)."""
    max_json_depth: int = 64
    """Deepest nesting of arrays/objects in a JSON body (400 beyond)."""
    auth_failure_limit: Limit = AUTH_FAILURE_LIMIT
    """Failed authentications per client address (``[limits] auth_failure_rate/burst``); 429 beyond."""

    def policy(self, route: str) -> RoutePolicy:
        return self.routes.get(route, _DEFAULT_POLICY)

    def limit_for(self, route: str) -> Limit | None:
        return self.policy(route).limit or self.limit

    def cache_ttl_for(self, route: str) -> float:
        ttl = self.policy(route).cache_ttl
        return self.cache_ttl if ttl is None else ttl


_DEFAULT_POLICY = RoutePolicy()


def _take(table: Any, where: str, allowed: set[str] | None) -> dict[str, Any]:
    """``table`` as a dict; any key outside ``allowed`` (``None``: any key goes) names itself."""
    if not isinstance(table, Mapping):
        raise ValueError(f"gateway config {where}: must be a table, got {table!r}")
    unknown = sorted(set(table) - allowed) if allowed is not None else []
    if unknown and allowed is not None:
        raise ValueError(f"gateway config {where}: unknown key {unknown[0]!r} (allowed: {sorted(allowed)})")
    return dict(table)


def _number(table: Mapping[str, Any], key: str, default: float, where: str, kind: type = float) -> Any:
    """``table[key]`` as ``kind`` (int or float), or a ValueError naming ``where`` and the key."""
    value = table.get(key, default)
    want = "an integer" if kind is int else "a number"
    try:
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise ValueError
        number = float(value)
        if kind is int and not number.is_integer():
            raise ValueError
        return kind(number)
    except (ValueError, OverflowError):
        raise ValueError(f"gateway config {where}{key}: expected {want}, got {value!r}") from None


def _auth(table: Mapping[str, Any], base: Path) -> AuthConfig:
    t = _take(table, "[auth]", {"algorithm", "secret_env", "public_key_file", "audience", "issuer", "leeway"})
    algorithm = str(t.get("algorithm", "HS256")).upper()
    if algorithm == "HS256":
        env = str(t.get("secret_env", "GRPCMESH_GATEWAY_JWT_SECRET"))
        key = os.environ.get(env, "")
        if not key:
            raise ValueError(f"gateway config [auth]: HS256 needs the secret in ${env}, which is empty")
    else:
        if "public_key_file" not in t:
            raise ValueError("gateway config [auth]: RS256 needs public_key_file")
        key_path = base / str(t["public_key_file"])
        try:
            key = key_path.read_text()
        except OSError as err:
            raise ValueError(f"gateway config [auth] public_key_file: {err}") from None
    return AuthConfig(
        algorithm=algorithm,
        key=key,
        audience=t.get("audience"),
        issuer=t.get("issuer"),
        leeway=_number(t, "leeway", 0.0, "[auth] "),
    )


def _limit(t: Mapping[str, Any], default: Limit | None, where: str) -> Limit | None:
    if "rate" not in t and "burst" not in t:
        return default
    rate = _number(t, "rate", default.rate if default else 1.0, where)
    return Limit(rate=rate, burst=_number(t, "burst", max(1, round(rate)), where, int))


def _route(name: str, table: Mapping[str, Any]) -> RoutePolicy:
    where = f'[routes."{name}"] '
    t = _take(table, where.strip(), {"public", "scopes", "rate", "burst", "cache_ttl"})
    return RoutePolicy(
        public=bool(t.get("public", False)),
        scopes=tuple(str(s) for s in t.get("scopes", ())),
        limit=_limit(t, None, where),
        cache_ttl=None if t.get("cache_ttl") is None else _number(t, "cache_ttl", 0.0, where),
    )


def load_config(path: str | os.PathLike[str] | None, **overrides: Any) -> GatewayConfig:
    """The config in ``path`` (``None``: defaults) with CLI ``overrides`` (non-None values) on top."""
    data: dict[str, Any] = {}
    base = Path.cwd()
    text = ""
    if path is not None:
        try:
            text = Path(path).read_text()
            data = tomllib.loads(text)
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise ValueError(f"gateway config {os.fspath(path)!r}: {err}") from None
        base = Path(path).resolve().parent
    try:
        config = _parse(data, base)
    except (TypeError, ValueError) as err:
        message = str(err) if str(err).startswith("gateway config") else f"gateway config: {err}"
        raise ValueError(_located(message, path, text)) from None
    config = replace(config, **{k: v for k, v in overrides.items() if v is not None})
    if config.timeout <= 0 or config.max_timeout < config.timeout:
        raise ValueError("gateway config: need 0 < timeout <= max_timeout")
    backend = config.rate_limit_backend
    if backend != "memory" and not backend.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(f"gateway config [rate_limit] backend: 'memory' or a redis:// URL, got {backend!r}")
    return config


_WHERE = re.compile(r"^gateway config (?:\[([^\]]+)\] ?)?([\w.]*):")


def _located(message: str, path: str | os.PathLike[str] | None, text: str) -> str:
    """``message`` plus ``(in FILE:LINE)`` of the key it names (``(in FILE)`` when not found)."""
    if path is None:
        return message
    where = _WHERE.match(message)
    section, key = (where.group(1) or "", where.group(2)) if where else ("", "")
    unknown = re.search(r"unknown key '([^']+)'", message)
    key = unknown.group(1) if unknown else key
    dotted = ".".join(p for p in (section.replace('"', ""), key) if p)
    origins = toml_origins(os.fspath(path), text)
    return f"{message} (in {origins.get(dotted) or os.fspath(path)})"


def _parse(data: dict[str, Any], base: Path) -> GatewayConfig:
    top = {"listen", "protos", "sidecar", "discovery", "services", "timeout", "max_timeout", "auth"}
    top |= {"rate_limit", "cache", "routes", "trust_forwarded_for", "access_log", "limits"}
    data = _take(data, "(top level)", top)
    limits = _limits(data.get("limits", {}))
    rl = _take(data.get("rate_limit", {}), "[rate_limit]", {"rate", "burst", "backend", "enabled"})
    cache = _take(data.get("cache", {}), "[cache]", {"ttl", "max_entries"})
    limit = None if rl.get("enabled", True) is False else _limit(rl, DEFAULT_LIMIT, "[rate_limit] ")
    return GatewayConfig(
        listen=str(data.get("listen", GatewayConfig.listen)),
        protos=tuple(data.get("protos", DEFAULT_PROTOS)),
        sidecar=data.get("sidecar"),
        discovery=data.get("discovery"),
        services={
            **DEFAULT_SERVICES,
            **{str(k): str(v) for k, v in _take(data.get("services", {}), "[services]", None).items()},
        },
        timeout=_number(data, "timeout", GatewayConfig.timeout, ""),
        max_timeout=_number(data, "max_timeout", GatewayConfig.max_timeout, ""),
        auth=_auth(data["auth"], base) if "auth" in data else None,
        limit=limit,
        rate_limit_backend=str(rl.get("backend", "memory")),
        cache_ttl=_number(cache, "ttl", GatewayConfig.cache_ttl, "[cache] "),
        cache_entries=_number(cache, "max_entries", GatewayConfig.cache_entries, "[cache] ", int),
        trust_forwarded_for=bool(data.get("trust_forwarded_for", False)),
        access_log=bool(data.get("access_log", False)),
        routes={name: _route(name, t) for name, t in _take(data.get("routes", {}), "[routes]", None).items()},
        **limits,
    )


def _limits(table: Any) -> dict[str, Any]:
    """``[limits]``: connection, body and JSON limits, and the failed-authentication limit."""
    keys = {"header_timeout", "idle_timeout", "max_connections", "body_timeout", "max_json_depth"}
    t = _take(table, "[limits]", keys | {"auth_failure_rate", "auth_failure_burst"})
    base = ConnectionLimits()
    connections = ConnectionLimits(
        header_timeout=float(t.get("header_timeout", base.header_timeout)),
        idle_timeout=float(t.get("idle_timeout", base.idle_timeout)),
        max_connections=int(t.get("max_connections", base.max_connections)),
    )
    numbers = (connections.header_timeout, connections.idle_timeout, connections.max_connections)
    if min(numbers) <= 0 or int(t.get("max_json_depth", 1)) < 1 or float(t.get("body_timeout", 1)) <= 0:
        raise ValueError("gateway config [limits]: timeouts, max_connections and max_json_depth must be > 0")
    return {
        "connections": connections,
        "body_timeout": float(t.get("body_timeout", GatewayConfig.body_timeout)),
        "max_json_depth": int(t.get("max_json_depth", GatewayConfig.max_json_depth)),
        "auth_failure_limit": Limit(
            rate=float(t.get("auth_failure_rate", AUTH_FAILURE_LIMIT.rate)),
            burst=int(t.get("auth_failure_burst", AUTH_FAILURE_LIMIT.burst)),
        ),
    }

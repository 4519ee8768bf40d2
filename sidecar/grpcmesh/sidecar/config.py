"""Sidecar configuration: one TOML file, then GRPCMESH_CFG__* env, then flags → frozen dataclasses.

Everything is validated up front, before any socket opens; a bad value raises
:class:`ConfigError` naming the key (``cluster.retry.max_attempts: must be >= 1``),
which the CLI prints and exits on. Policy objects receive the resulting
dataclasses and never read env or files themselves.

TOML layout (every key optional except ``service`` and ``app``)::

    service = "orders"            app = "127.0.0.1:50051"
    outbound = "127.0.0.1:15001"  inbound = "0.0.0.0:15000"  admin = "127.0.0.1:15090"
    consul = "http://127.0.0.1:8500"   consul_token = "..."   (masked in /config)
    max_message_bytes = 0 (no per-message cap)  max_concurrency = 1000  drain_timeout_s = 10
    workers = 1                   # > 1: that many processes share the ports (workers.py)
    [endpoints]  payments = ["127.0.0.1:5001"]       # static discovery
    [routes]     "shop.v1.Payments" = "payments"      # proto service → mesh service
    [methods."/shop.v1.Orders/Get"]  idempotent = true
    [tracing]    sample_ratio = 0.01  exporter = "otlp"  endpoint = "..."
    [tls]        cert_file = "orders.pem"  key_file = "orders.key"  ca_file = "bundle.pem"  require = true
    authz_policy = "policy.toml"  # inbound authorization (needs tls), reloaded on change
    [cluster]    balancer = "p2c_ewma"  [cluster.breaker] ...  [cluster.retry] ...
    [services.payments]  balancer = "round_robin"   # per-service cluster overrides
    [h2]         max_concurrent_streams = 1000  max_header_list_bytes = 16777216  idle_timeout_s = 300
    [client]     ...                                   # read by the SDK, ignored here
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc

from grpcmesh.sdk.cluster import ClusterConfig
from grpcmesh.sdk.config_sources import CFG_PREFIX, env_layer, locate, toml_origins
from grpcmesh.sdk.discovery import DEFAULT_REGISTRY_FILE, registry_file
from grpcmesh.sdk.hostport import split_host_port
from grpcmesh.sdk.idempotency import MethodInfo
from grpcmesh.sdk.settings import ConfigError, build_dataclass
from grpcmesh.sdk.tracing import EXPORTERS
from grpcmesh.sidecar.h2.limits import H2Limits

__all__ = [
    "ConfigError",
    "SidecarConfig",
    "TlsConfig",
    "TracingConfig",
    "load_config",
    "mask_url",
    "masked",
    "parse_endpoints",
]

ENV_PREFIX = "GRPCMESH_"
SECRET_KEYS = ("token", "password", "secret")
# Query parameters whose values are credentials (``?token=``, ``?access_token=``, ``?api_key=``...).
_SECRET_PARAMS = (*SECRET_KEYS, "key", "auth", "credential", "passwd", "pwd", "sig")


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:  # a parent package is missing
        return False


@dataclass(frozen=True)
class TracingConfig:
    enabled: bool = True
    sample_ratio: float = 1.0
    exporter: str = "none"
    endpoint: str | None = None

    def __post_init__(self) -> None:
        if not 0.0 <= self.sample_ratio <= 1.0:
            raise ValueError("sample_ratio: must be within [0, 1]")
        if self.exporter not in EXPORTERS:
            raise ValueError(f"exporter: must be one of {', '.join(EXPORTERS)}")
        if self.exporter == "otlp" and not _installed("opentelemetry.exporter.otlp.proto.grpc"):
            raise ValueError("exporter: 'otlp' needs the extra: pip install 'grpcmesh[otlp]'")


@dataclass(frozen=True)
class TlsConfig:
    """Mutual TLS between sidecars: this sidecar's certificate and the mesh CA (PEM files).

    The certificate names the service (a DNS SAN equal to ``service``); callers
    check it against the service they route to, and the inbound listener
    accepts only clients whose certificate the CA signed.
    """

    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    require: bool = False  # refuse to start without TLS (no plaintext, unauthenticated inbound)

    def __post_init__(self) -> None:
        given = {k: getattr(self, k) for k in ("cert_file", "key_file", "ca_file")}
        if self.require and not any(given.values()):
            raise ValueError("require: TLS is required but cert_file, key_file and ca_file are not set")
        if any(given.values()):
            for key, value in given.items():
                if not value:
                    raise ValueError(f"{key}: required when any of cert_file, key_file, ca_file is set")
                if not os.path.isfile(value):
                    raise ValueError(f"{key}: no such file {value!r}")

    @property
    def enabled(self) -> bool:
        return self.cert_file is not None


@dataclass(frozen=True)
class SidecarConfig:
    service: str
    app: str
    outbound: str = "127.0.0.1:15001"
    inbound: str = "0.0.0.0:15000"
    admin: str = "127.0.0.1:15090"
    advertise: str | None = None
    consul: str | None = None
    consul_token: str | None = None
    endpoints_file: str | None = None
    endpoints: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    routes: Mapping[str, str] = field(default_factory=dict)
    methods: Mapping[str, MethodInfo] = field(default_factory=dict)
    max_message_bytes: int = 0  # per-message cap in the relay; 0: none (messages stream under flow control)
    max_concurrency: int = 1000
    drain_timeout_s: float = 10.0
    policies: bool = True
    access_log: bool = False
    uvloop: bool = True
    reuse_port: bool = False
    workers: int = 1  # processes sharing the listening ports (SO_REUSEPORT), one event loop each
    tracing: TracingConfig = field(default_factory=TracingConfig)
    tls: TlsConfig = field(default_factory=TlsConfig)
    authz_policy: str | None = None
    cluster: ClusterConfig = field(default_factory=ClusterConfig)
    services: Mapping[str, ClusterConfig] = field(default_factory=dict)
    h2: H2Limits = field(default_factory=H2Limits)  # per-connection HTTP/2 limits (h2/limits.py)

    def __post_init__(self) -> None:
        if not self.service:
            raise ValueError("service: required (the name this sidecar serves)")
        for key in ("app", "outbound", "inbound", "admin"):
            _check_hostport(key, getattr(self, key))
        if self.max_message_bytes != 0 and self.max_message_bytes < 1024:
            raise ValueError("max_message_bytes: must be 0 (no cap) or >= 1024")
        if self.max_concurrency < 1:
            raise ValueError("max_concurrency: must be >= 1")
        if not 1 <= self.workers <= 64:
            raise ValueError("workers: must be within [1, 64]")
        if self.drain_timeout_s < 0:
            raise ValueError("drain_timeout_s: must be >= 0")
        if self.authz_policy and not self.tls.enabled:
            raise ValueError(
                "authz_policy: needs tls (without client certificates no caller identity is proven)"
            )
        if self.authz_policy and not os.path.isfile(self.authz_policy):
            raise ValueError(f"authz_policy: no such file {self.authz_policy!r}")

    def cluster_for(self, service: str) -> ClusterConfig:
        return self.services.get(service, self.cluster)


def _check_hostport(key: str, value: str) -> None:
    try:
        split_host_port(value, min_port=0)
    except ValueError as err:
        raise ValueError(f"{key}: expected host:port, got {value!r} ({err})") from None


def parse_endpoints(spec: str) -> dict[str, tuple[str, ...]]:
    """``orders=127.0.0.1:5001,127.0.0.1:5002;payments=...`` → {service: (host:port, ...)}."""
    out: dict[str, tuple[str, ...]] = {}
    for part in filter(None, (p.strip() for p in spec.split(";"))):
        name, sep, addrs = part.partition("=")
        if not sep or not name:
            raise ConfigError(f"endpoints: expected service=host:port[,host:port], got {part!r}")
        targets = tuple(a.strip() for a in addrs.split(",") if a.strip())
        for t in targets:
            try:
                _check_hostport(f"endpoints.{name}", t)
            except ValueError as err:
                raise ConfigError(str(err)) from None
        out[name.strip()] = targets
    return out


def _special(cls: type[Any], key: str, value: Any, full: str) -> Any:
    """Mapping-valued fields of SidecarConfig (None = use the generic coercion)."""
    if cls is not SidecarConfig:
        return None
    if key == "endpoints":
        if isinstance(value, str):
            return parse_endpoints(value)
        return {k: tuple(v) for k, v in dict(value).items()}
    if key == "routes":
        return {str(k): str(v) for k, v in dict(value).items()}
    if key == "services":
        return {
            name: build_dataclass(ClusterConfig, t, f"services.{name}") for name, t in dict(value).items()
        }
    if key == "methods":
        out: dict[str, MethodInfo] = {}
        for path, spec in dict(value).items():
            out[path] = MethodInfo(bool(spec.get("idempotent", False)))
        return out
    return None


def _merge(base: dict[str, Any], top: Mapping[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for k, v in top.items():
        if isinstance(v, Mapping) and isinstance(out.get(k), Mapping):
            out[k] = _merge(dict(out[k]), v)
        else:
            out[k] = v
    return out


def load_config(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
    flags: Mapping[str, str] | None = None,
) -> SidecarConfig:
    """Defaults < TOML file < ``GRPCMESH_CFG__*`` env < ``overrides`` (flags, nested dicts allowed).

    A bad value's error ends with where it came from (``flags`` maps dotted keys to the
    flag that set them). With no discovery configured, the registry file is the one every
    command uses: ``$GRPCMESH_DISCOVERY``, ``$GRPCMESH_REGISTRY``, ``./grpcmesh-registry.toml``.
    """
    env = os.environ if environ is None else environ
    data: dict[str, Any] = {}
    origins: dict[str, str] = {}
    path = path or env.get(f"{ENV_PREFIX}CONFIG")
    if path:
        try:
            text = Path(path).read_text()
            data = tomllib.loads(text)
        except OSError as err:
            raise ConfigError(f"config: cannot read {path}: {err.strerror}") from None
        except tomllib.TOMLDecodeError as err:
            raise ConfigError(f"config: {path} is not valid TOML: {err}") from None
        origins.update(toml_origins(str(path), text))
    data.pop("client", None)  # the SDK's own table in the shared file (ClientConfig.from_file)
    names = [f.name for f in dataclasses.fields(SidecarConfig)]
    env_data, env_origins = env_layer(env, names)
    data = _merge(data, env_data)
    origins.update(env_origins)
    top = {k: v for k, v in (overrides or {}).items() if v is not None}
    data = _merge(data, top)
    origins.update(_flag_origins(top, flags or {}))
    _default_discovery(data, env, origins)
    try:
        unknown = sorted(set(data) - set(names))
        if unknown:  # before "required": a typo'd key is reported as itself
            raise ConfigError(f"{unknown[0]}: unknown key (valid: {', '.join(sorted(names))})")
        for required in ("service", "app"):
            if not data.get(required):
                raise ConfigError(
                    f"{required}: required (flag --{required}, env {CFG_PREFIX}{required.upper()})"
                )
        cfg: SidecarConfig = build_dataclass(SidecarConfig, data, special=_special)
    except ConfigError as err:
        raise ConfigError(locate(str(err), origins)) from None
    return cfg


def mask_url(url: str) -> str:
    """``url`` with its user info and the values of credential-like query parameters as ``***``."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return url
    head, qmark, query = rest.partition("?")
    query, hash_, fragment = query.partition("#")
    authority = head.split("/", 1)[0]
    if "@" in authority:  # user:password@host
        head = "***@" + head[authority.rindex("@") + 1 :]
    params = []
    for pair in query.split("&") if query else ():
        name, eq, _value = pair.partition("=")
        secret = eq and any(s in name.lower() for s in _SECRET_PARAMS)
        params.append(f"{name}=***" if secret else pair)
    return f"{scheme}://{head}{qmark}{'&'.join(params)}{hash_}{fragment}"


def _flag_origins(top: Mapping[str, Any], flags: Mapping[str, str], prefix: str = "") -> dict[str, str]:
    out: dict[str, str] = {}
    for key, value in top.items():
        full = f"{prefix}{key}"
        if isinstance(value, Mapping) and full not in flags:
            out.update(_flag_origins(value, flags, f"{full}."))
        else:
            out[full] = f"flag {flags.get(full, '--' + full.replace('_', '-'))}"
    return out


def _default_discovery(data: dict[str, Any], env: Mapping[str, str], origins: dict[str, str]) -> None:
    """No consul, registry file or inline endpoints given: the shared defaults (as the SDK's)."""
    if data.get("consul") or data.get("endpoints_file") or data.get("endpoints"):
        return
    for name in (f"{ENV_PREFIX}DISCOVERY", f"{ENV_PREFIX}REGISTRY"):
        url = env.get(name)
        if url:
            key = "endpoints_file" if registry_file(url) is not None else "consul"
            data[key] = url
            origins[key] = f"env {name}"
            return
    data["endpoints_file"] = DEFAULT_REGISTRY_FILE


def masked(cfg: SidecarConfig) -> dict[str, Any]:
    """The effective config as JSON-able data with secrets replaced by ``***``."""

    def conv(obj: Any, key: str = "") -> Any:
        if isinstance(obj, str) and "://" in obj:
            obj = mask_url(obj)
        if any(s in key.lower() for s in SECRET_KEYS) and obj:
            return "***"
        if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
            return {f.name: conv(getattr(obj, f.name), f.name) for f in dataclasses.fields(obj)}
        if isinstance(obj, Mapping):
            return {str(k): conv(v, str(k)) for k, v in obj.items()}
        if isinstance(obj, frozenset | set):
            return sorted(conv(v) for v in obj)
        if isinstance(obj, tuple | list):
            return [conv(v) for v in obj]
        if isinstance(obj, grpc.StatusCode):
            return obj.name
        if isinstance(obj, str) and "://" in obj and "@" in obj:  # credentials in a URL
            scheme, rest = obj.split("://", 1)
            return f"{scheme}://***@{rest.split('@', 1)[1]}"
        return obj

    out: dict[str, Any] = conv(cfg)
    json.dumps(out)  # fails loudly in tests if something is not serialisable
    return out

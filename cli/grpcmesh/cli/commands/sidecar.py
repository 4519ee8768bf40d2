"""``grpcmesh sidecar``: run the mesh proxy next to one service.

Flags override ``GRPCMESH_CFG__*`` env, which overrides the TOML file (``--config``);
an invalid value exits with status 2 and a message naming the key and where it was set.
"""

from __future__ import annotations

import argparse
from typing import Any

from grpcmesh.cli.errors import CommandError
from grpcmesh.cli.service_args import ALLOW_EMPTY_HELP

__all__ = ["add_parser", "overrides_from_args"]


def add_parser(sub: Any) -> None:
    p = sub.add_parser(
        "sidecar",
        help="run the sidecar proxy next to a service",
        description="Run the mesh proxy next to one service: the app calls other services through "
        "OUTBOUND, other sidecars reach the app through INBOUND. Settings: --config TOML < "
        "GRPCMESH_CFG__SECTION__KEY env < flags. Discovery: --consul, --endpoints-file, --endpoints, "
        "else $GRPCMESH_DISCOVERY, $GRPCMESH_REGISTRY or ./grpcmesh-registry.toml.",
    )
    p.add_argument("--config", help="TOML config file (default: $GRPCMESH_CONFIG)")
    p.add_argument("--service", help="name of the service this sidecar fronts (required)")
    p.add_argument("--app", help="host:port of the local app (required)")
    p.add_argument(
        "--outbound", help="listen address for the app's outgoing calls (default: 127.0.0.1:15001)"
    )
    p.add_argument("--inbound", help="listen address for calls from the mesh (default: 0.0.0.0:15000)")
    p.add_argument("--admin", help="admin HTTP address (default: 127.0.0.1:15090)")
    p.add_argument("--advertise", help="host:port registered in discovery (default: the inbound address)")
    p.add_argument("--consul", help="Consul URL, e.g. http://127.0.0.1:8500 (also registers this sidecar)")
    p.add_argument(
        "--endpoints",
        action="append",
        help="static discovery: orders=127.0.0.1:5001,127.0.0.1:5002 (repeatable)",
    )
    p.add_argument(
        "--endpoints-file",
        help="registry file, TOML or .json, reloaded on change "
        "(default: $GRPCMESH_DISCOVERY, $GRPCMESH_REGISTRY, ./grpcmesh-registry.toml)",
    )
    p.add_argument("--allow-empty-registry", action="store_true", help=ALLOW_EMPTY_HELP)
    p.add_argument(
        "--balancer", choices=("p2c_ewma", "round_robin"), help="load balancer (default: p2c_ewma)"
    )
    p.add_argument(
        "--max-concurrency",
        type=int,
        help="inbound calls in flight before RESOURCE_EXHAUSTED (default: 1000)",
    )
    p.add_argument("--max-message-bytes", type=int, help="largest gRPC message (default: 16 MiB)")
    p.add_argument(
        "--drain-timeout",
        type=float,
        dest="drain_timeout_s",
        help="seconds to drain on SIGTERM (default: 10)",
    )
    p.add_argument(
        "--workers",
        type=int,
        help="worker processes sharing the ports, one core each; admin merges their metrics (default: 1)",
    )
    p.add_argument("--sample-ratio", type=float, help="trace sampling ratio 0..1 (default: 1.0)")
    p.add_argument(
        "--trace-exporter",
        choices=("none", "console", "otlp", "memory", "store", "zipkin"),
        help="where spans go (default: none)",
    )
    p.add_argument("--trace-endpoint", help="store: SQLite file; zipkin/otlp: collector URL")
    p.add_argument("--no-tracing", action="store_true", help="no spans (trace headers pass through)")
    p.add_argument("--bare", action="store_true", help="policies off: plain proxy (benchmarks)")
    p.add_argument("--access-log", action="store_true", help="one log line per call (request id, trace id)")
    p.add_argument("--no-uvloop", action="store_true", help="use the default asyncio event loop")
    p.add_argument("--tls-cert", help="mTLS between sidecars: this service's certificate (PEM)")
    p.add_argument("--tls-key", help="mTLS: its private key (PEM)")
    p.add_argument("--tls-ca", help="mTLS: the trust bundle, the mesh root(s) (PEM)")
    p.add_argument("--require-tls", action="store_true", help="refuse to start without mTLS")
    p.add_argument(
        "--authz-policy", help="inbound authorization policy (TOML, needs mTLS; reloaded on change)"
    )
    p.set_defaults(func=_run)


# Dotted config keys whose flag is not simply --key-with-dashes (for "from flag ..." in errors).
FLAGS = {
    "drain_timeout_s": "--drain-timeout",
    "tracing.sample_ratio": "--sample-ratio",
    "tracing.exporter": "--trace-exporter",
    "tracing.endpoint": "--trace-endpoint",
    "tracing.enabled": "--no-tracing",
    "tls.cert_file": "--tls-cert",
    "tls.key_file": "--tls-key",
    "tls.ca_file": "--tls-ca",
    "cluster.balancer": "--balancer",
    "policies": "--bare",
    "uvloop": "--no-uvloop",
}


def overrides_from_args(args: argparse.Namespace) -> dict[str, Any]:
    from grpcmesh.sidecar.config import parse_endpoints

    endpoints: dict[str, tuple[str, ...]] = {}
    for spec in args.endpoints or ():
        endpoints.update(parse_endpoints(spec))
    tracing: dict[str, Any] = {}
    if args.sample_ratio is not None:
        tracing["sample_ratio"] = args.sample_ratio
    if args.trace_exporter:
        tracing["exporter"] = args.trace_exporter
    if args.trace_endpoint:
        tracing["endpoint"] = args.trace_endpoint
    if args.no_tracing:
        tracing["enabled"] = False
    tls = {
        "cert_file": args.tls_cert,
        "key_file": args.tls_key,
        "ca_file": args.tls_ca,
        "require": args.require_tls,
    }
    out: dict[str, Any] = {
        "service": args.service,
        "app": args.app,
        "outbound": args.outbound,
        "inbound": args.inbound,
        "admin": args.admin,
        "advertise": args.advertise,
        "consul": args.consul,
        "endpoints_file": args.endpoints_file,
        "max_concurrency": args.max_concurrency,
        "max_message_bytes": args.max_message_bytes,
        "drain_timeout_s": args.drain_timeout_s,
        "workers": args.workers,
        "endpoints": endpoints or None,
        "tracing": tracing or None,
        "tls": {k: v for k, v in tls.items() if v} or None,
        "authz_policy": args.authz_policy,
        "cluster": {"balancer": args.balancer} if args.balancer else None,
        "policies": False if args.bare else None,
        "access_log": True if args.access_log else None,
        "uvloop": False if args.no_uvloop else None,
    }
    return {k: v for k, v in out.items() if v is not None}


def _run(args: argparse.Namespace) -> int:
    import asyncio

    from grpcmesh.cli.registry_check import check_registry
    from grpcmesh.sidecar.app import run
    from grpcmesh.sidecar.config import ConfigError, load_config
    from grpcmesh.sidecar.workers import run_workers

    try:
        cfg = load_config(args.config, overrides_from_args(args), flags=FLAGS)
    except ConfigError as err:
        raise CommandError(f"invalid config: {err}") from None
    if not cfg.consul and cfg.endpoints_file:
        check_registry(cfg.endpoints_file, allow_empty=args.allow_empty_registry)
    if cfg.uvloop:
        try:
            import uvloop

            uvloop.install()
        except ImportError:  # pragma: no cover - uvloop is a dependency on Linux
            pass
    return asyncio.run(run_workers(cfg) if cfg.workers > 1 else run(cfg))

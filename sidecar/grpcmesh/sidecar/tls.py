"""Mutual TLS between sidecars: SSL contexts and grpc-core credentials from one config.

Identity is the mesh service name, carried as a DNS subjectAltName of each
sidecar's certificate (all signed by one mesh CA). A calling sidecar checks
the upstream's certificate against the service it routed to (hostname
verification with ``server_hostname=service``), so a misrouted or spoofed
endpoint is refused before any request byte leaves; the inbound listener
accepts only certificates from the mesh CA and replaces the caller's
``x-mesh-source`` with the identity its certificate proves. Both sides speak
HTTP/2 only (ALPN ``h2``), TLS 1.2 or newer. Traffic between a sidecar and its
own app stays on loopback in plaintext.
"""

from __future__ import annotations

import ssl
from pathlib import Path

import grpc

from grpcmesh.sidecar.config import TlsConfig

__all__ = ["channel_credentials", "client_context", "server_context", "server_name_option"]


def _files(cfg: TlsConfig) -> tuple[str, str, str]:
    """Certificate, key and CA paths (config validation guarantees all three when enabled)."""
    assert cfg.cert_file is not None
    assert cfg.key_file is not None
    assert cfg.ca_file is not None
    return cfg.cert_file, cfg.key_file, cfg.ca_file


def _context(purpose: ssl.Purpose, cfg: TlsConfig) -> ssl.SSLContext:
    cert, key, ca = _files(cfg)
    ctx = ssl.create_default_context(purpose, cafile=ca)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cert, key)
    ctx.set_alpn_protocols(["h2"])
    return ctx


def server_context(cfg: TlsConfig) -> ssl.SSLContext:
    """For the INBOUND listener: our certificate, and a client certificate is required."""
    ctx = _context(ssl.Purpose.CLIENT_AUTH, cfg)
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def client_context(cfg: TlsConfig) -> ssl.SSLContext:
    """For connections to upstream sidecars: our certificate, and theirs checked by name."""
    ctx = _context(ssl.Purpose.SERVER_AUTH, cfg)
    ctx.check_hostname = True
    ctx.verify_mode = ssl.CERT_REQUIRED
    return ctx


def channel_credentials(cfg: TlsConfig) -> grpc.ChannelCredentials:
    """The same identity for grpc-core channels (the reflection lookups of idempotency levels)."""
    cert, key, ca = (Path(p).read_bytes() for p in _files(cfg))
    return grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)


def server_name_option(service: str) -> tuple[str, str]:
    """grpc-core channel option: the upstream's certificate must name ``service`` (as for the pool)."""
    return ("grpc.ssl_target_name_override", service)

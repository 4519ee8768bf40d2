"""Mutual TLS between sidecars: SSL contexts and the peer identity a certificate proves.

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
from typing import Any

from grpcmesh.sidecar.config import TlsConfig

__all__ = ["client_context", "peer_identity", "server_context"]


def _context(purpose: ssl.Purpose, cfg: TlsConfig) -> ssl.SSLContext:
    assert cfg.cert_file is not None
    assert cfg.key_file is not None
    assert cfg.ca_file is not None
    ctx = ssl.create_default_context(purpose, cafile=cfg.ca_file)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(cfg.cert_file, cfg.key_file)
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


def peer_identity(peercert: Any) -> str | None:
    """The first DNS subjectAltName of a verified peer certificate (``getpeercert()``)."""
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "DNS":
            return str(value)
    return None

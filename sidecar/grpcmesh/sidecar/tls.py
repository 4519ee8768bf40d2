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

Certificates are short-lived, so :class:`ReloadingTls` watches the three files
and swaps contexts without a restart: the inbound listener keeps one "front"
context whose SNI callback (run on every handshake, SNI sent or not) hands the
connection the current context, so new connections get the new certificate
and bundle while established ones keep theirs until their calls finish.
"""

from __future__ import annotations

import asyncio
import datetime
import logging
import ssl
import time
from collections.abc import Callable
from pathlib import Path

import grpc
from cryptography import x509
from prometheus_client import CollectorRegistry, Counter, Gauge

from grpcmesh.sdk.authz import file_signature
from grpcmesh.sidecar.config import TlsConfig

__all__ = [
    "ReloadingTls",
    "channel_credentials",
    "client_context",
    "server_context",
    "server_name_option",
]

log = logging.getLogger("grpcmesh.sidecar.tls")


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


Signature = tuple[tuple[int, int, int] | None, ...]


def _signature(cfg: TlsConfig) -> Signature:
    return tuple(file_signature(p) for p in _files(cfg))


def _validity(cert_file: str) -> tuple[float, float, str, str]:
    """(notBefore, notAfter, serial in hex, spiffe id or "") of the first certificate in the file."""
    cert = x509.load_pem_x509_certificate(Path(cert_file).read_bytes())
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        uris = [
            u for u in san.get_values_for_type(x509.UniformResourceIdentifier) if u.startswith("spiffe://")
        ]
    except x509.ExtensionNotFound:
        uris = []
    valid = cert.not_valid_before_utc.timestamp(), cert.not_valid_after_utc.timestamp()
    return *valid, f"{cert.serial_number:x}", uris[0] if uris else ""


class ReloadingTls:
    """The current server/client contexts; :meth:`poll` reloads them when a file changed.

    A half-rotated set (a new certificate whose key is not written yet) fails
    to load: the old contexts stay and the next poll tries again. ``on_client``
    receives each new client context (the upstream pools redial with it).
    """

    def __init__(self, cfg: TlsConfig, registry: CollectorRegistry | None = None) -> None:
        self.cfg = cfg
        self.front = server_context(cfg)  # given to the listener once; the SNI callback swaps
        self.front.sni_callback = self._pick
        self.server = self.front
        self.client = client_context(cfg)
        self.on_client: Callable[[ssl.SSLContext], None] | None = None
        self._sig = _signature(cfg)
        self.info = Gauge(
            "grpcmesh_tls_cert_info", "The certificate in use (value 1)", ["serial"], registry=registry
        )
        self._set_validity(_validity(_files(cfg)[0]))
        self._warned: tuple[float, bool] | None = None
        self._failing = False
        self.reloads = Counter(
            "grpcmesh_tls_reloads",
            "Certificate/key/bundle reloads by result",
            ["result"],
            registry=registry,
        )
        expiry = Gauge(
            "grpcmesh_tls_cert_expiry_timestamp_seconds",
            "notAfter of this sidecar's certificate",
            registry=registry,
        )
        expiry.set_function(lambda: self.not_after)
        remaining = Gauge(
            "grpcmesh_tls_cert_remaining_seconds",
            "Seconds until this sidecar's certificate expires",
            registry=registry,
        )
        remaining.set_function(lambda: self.not_after - time.time())
        self.check_expiry()

    def _set_validity(self, validity: tuple[float, float, str, str]) -> None:
        self.not_before, self.not_after, serial, self.identity = validity
        self.info.clear()
        self.info.labels(serial).set(1)

    def _pick(self, sslobj: ssl.SSLObject, _name: str | None, _ctx: ssl.SSLContext) -> None:
        if self.server is not self.front:
            sslobj.context = self.server

    def poll(self) -> bool:
        """Reloads if any file changed since the last good load; True when it did."""
        sig = _signature(self.cfg)
        if sig == self._sig:
            return False
        try:
            server, client = server_context(self.cfg), client_context(self.cfg)
            validity = _validity(_files(self.cfg)[0])
        except (OSError, ssl.SSLError, ValueError) as err:
            if not self._failing:  # once per bad state, not every poll
                log.warning("tls: cannot load the changed certificate files (%s); keeping the old ones", err)
                self.reloads.labels("error").inc()
            self._failing = True
            return False
        self._failing = False
        self._sig = sig
        self.server, self.client = server, client
        self._set_validity(validity)
        self.reloads.labels("ok").inc()
        when = datetime.datetime.fromtimestamp(self.not_after, datetime.UTC)
        log.info("tls: reloaded certificate, key and bundle (certificate valid until %s)", when)
        if self.on_client is not None:
            self.on_client(client)
        self.check_expiry()
        return True

    def check_expiry(self, now: float | None = None) -> None:
        """Warns once a certificate is in the last third of its life, and again once it expired."""
        now = time.time() if now is None else now
        left = self.not_after - now
        if left > (self.not_after - self.not_before) / 3:
            return
        state = (self.not_after, left <= 0)
        if self._warned == state:
            return
        self._warned = state
        if left <= 0:
            log.error("tls: this sidecar's certificate EXPIRED %.0fs ago; peers refuse it", -left)
        else:
            log.warning("tls: this sidecar's certificate expires in %.0fs; issue a new one", left)

    async def watch(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.poll()
            self.check_expiry()

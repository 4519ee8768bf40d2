"""A throwaway mesh CA for the mTLS tests, made by the same code as ``grpcmesh ca``.

Each service certificate carries ``spiffe://<trust-domain>/service/<name>`` as
its URI SAN and the service name as its DNS SAN (see grpcmesh.sdk.pki).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from pathlib import Path

import grpc

from grpcmesh.sdk import pki


@dataclass(frozen=True)
class Identity:
    cert: Path
    key: Path
    ca: Path

    def flags(self) -> list[str]:
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--tls-ca", str(self.ca)]

    def channel(self, port: int, server_name: str, roots: Path | None = None) -> grpc.aio.Channel:
        """An mTLS channel to 127.0.0.1:``port`` as this identity; the server must prove ``server_name``."""
        creds = grpc.ssl_channel_credentials(
            (roots or self.ca).read_bytes(), self.key.read_bytes(), self.cert.read_bytes()
        )
        options = [("grpc.ssl_target_name_override", server_name)]
        return grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options)


class MeshCA:
    """A CA directory ``directory/name``; each service's files go to ``directory/name-service/``."""

    def __init__(
        self, directory: Path, name: str = "mesh-ca", trust_domain: str = pki.DEFAULT_TRUST_DOMAIN
    ) -> None:
        self.dir = directory / name
        self.base = directory
        self.name = name
        self.ca_file = pki.init_ca(self.dir, trust_domain)

    def issue(
        self, service: str, *, hours: float = pki.DEFAULT_LEAF_HOURS, now: datetime.datetime | None = None
    ) -> Identity:
        files = pki.issue(self.dir, service, self.base / f"{self.name}-{service}", hours=hours, now=now)
        return Identity(files.cert, files.key, files.bundle)


def ca_cli(*args: str | Path) -> None:
    """``grpcmesh ca ...`` through the real command-line parser (in-process: fast)."""
    from grpcmesh.cli.main import main

    assert main(["ca", *map(str, args)]) == 0, f"grpcmesh ca {args} failed"


def cli_identity(ca_dir: Path, service: str, out: Path) -> Identity:
    """Issues ``service``'s leaf into ``out`` with ``grpcmesh ca issue``."""
    ca_cli("issue", service, "--dir", ca_dir, "--out", out)
    return Identity(out / f"{service}.pem", out / f"{service}.key", out / "bundle.pem")


def serial_of(cert: Path) -> str:
    """The serial (hex) of the first certificate in ``cert``, as /metrics shows it."""
    from cryptography import x509

    return f"{x509.load_pem_x509_certificate(cert.read_bytes()).serial_number:x}"


async def presented_serial(port: int, client: Identity, server_name: str) -> str:
    """The serial of the certificate a NEW TLS connection to 127.0.0.1:``port`` is shown."""
    import asyncio
    import ssl

    from cryptography import x509

    ctx = ssl.create_default_context(cafile=str(client.ca))
    ctx.load_cert_chain(client.cert, client.key)
    ctx.set_alpn_protocols(["h2"])
    _, writer = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=server_name)
    der = writer.get_extra_info("ssl_object").getpeercert(binary_form=True)
    writer.close()
    return f"{x509.load_der_x509_certificate(der).serial_number:x}"

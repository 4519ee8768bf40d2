"""What a PEM file holds, for ``grpcmesh ca inspect``: names, SANs, issuer, time left."""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from cryptography import x509
from cryptography.hazmat.primitives import hashes

from grpcmesh.sdk.pki.ca import CaError

__all__ = ["CertInfo", "describe"]

_TS = "%Y-%m-%d %H:%M:%S"


@dataclass(frozen=True)
class CertInfo:
    subject: str
    issuer: str
    uris: tuple[str, ...]
    dns: tuple[str, ...]
    not_before: datetime.datetime
    not_after: datetime.datetime
    is_ca: bool
    fingerprint: str

    def lines(self, now: datetime.datetime | None = None) -> list[str]:
        left = self.not_after - (now or datetime.datetime.now(datetime.UTC))
        state = f"expires in {_human(left)}" if left.total_seconds() > 0 else f"EXPIRED {_human(-left)} ago"
        return [
            f"subject     {self.subject}{'  (CA)' if self.is_ca else ''}",
            f"issuer      {self.issuer}",
            *(f"uri san     {u}" for u in self.uris),
            *(f"dns san     {d}" for d in self.dns),
            f"valid       {self.not_before:{_TS}}Z .. {self.not_after:{_TS}}Z ({state})",
            f"sha256      {self.fingerprint}",
        ]


def _human(delta: datetime.timedelta) -> str:
    s = int(delta.total_seconds())
    return f"{s // 86400}d{s % 86400 // 3600}h" if s >= 86400 else f"{s // 3600}h{s % 3600 // 60}m{s % 60}s"


def describe(pem: bytes) -> list[CertInfo]:
    """Every certificate in a PEM file (a leaf chain or a bundle), in file order."""
    try:
        certs = x509.load_pem_x509_certificates(pem)
    except ValueError as err:
        raise CaError(f"not a PEM certificate file: {err}") from None
    out = []
    for c in certs:
        try:
            san = c.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
            uris = tuple(san.get_values_for_type(x509.UniformResourceIdentifier))
            dns = tuple(san.get_values_for_type(x509.DNSName))
        except x509.ExtensionNotFound:
            uris = dns = ()
        try:
            is_ca = c.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        out.append(
            CertInfo(
                c.subject.rfc4514_string(),
                c.issuer.rfc4514_string(),
                uris,
                dns,
                c.not_valid_before_utc,
                c.not_valid_after_utc,
                is_ca,
                c.fingerprint(hashes.SHA256()).hex(),
            )
        )
    return out

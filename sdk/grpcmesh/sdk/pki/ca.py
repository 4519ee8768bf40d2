"""The mesh certificate authority (``grpcmesh ca``): a root, an intermediate, short-lived SPIFFE leaves.

Why a root AND an intermediate: the root key signs once and can be kept
offline, the intermediate signs every day's leaves. Every leaf names its
service twice: ``spiffe://<trust-domain>/service/<name>`` in the URI SAN (what
authorization policies and standard SPIFFE tooling read) and ``<name>`` in the
DNS SAN (what a calling sidecar checks with hostname verification). Leaves are
short-lived (24 h by default) so a stolen key is worth little, which is why the
sidecar reloads them without a restart.

A CA directory holds ``root.pem``/``root.key``, ``ca.pem``/``ca.key`` (the
intermediate) and ``bundle.pem``, the roots sidecars trust. A root rotation
(:func:`init_ca` with ``rotate=True``) keeps the old root in the bundle so
leaves of both roots verify until :func:`finish_rotation` drops it. Private
keys are written 0600, every file atomically (write + rename), so a sidecar
watching them never reads half a file.
"""

from __future__ import annotations

import datetime
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

__all__ = [
    "DEFAULT_LEAF_HOURS",
    "DEFAULT_TRUST_DOMAIN",
    "CaError",
    "IssuedFiles",
    "finish_rotation",
    "init_ca",
    "issue",
    "service_of",
    "spiffe_id",
]

DEFAULT_TRUST_DOMAIN = "grpcmesh.local"
DEFAULT_LEAF_HOURS = 24.0
ROOT_DAYS = 3650
INTERMEDIATE_DAYS = 365
_BACKDATE = datetime.timedelta(minutes=5)  # tolerate clock skew between hosts
_SPIFFE = "spiffe://"


class CaError(Exception):
    """A user mistake with the CA directory or a name (the CLI prints it as is)."""


def spiffe_id(trust_domain: str, service: str) -> str:
    return f"{_SPIFFE}{trust_domain}/service/{service}"


def service_of(identity: str) -> str | None:
    """``web`` for ``spiffe://td/service/web``; None for other ids."""
    if not identity.startswith(_SPIFFE):
        return None
    _, sep, name = identity[len(_SPIFFE) :].partition("/service/")
    return name if sep and name and "/" not in name else None


def _check_name(kind: str, value: str) -> None:
    ok = value and all(c.isalnum() or c in "-._" for c in value) and value[0].isalnum()
    if not ok:
        raise CaError(f"{kind}: {value!r} must be letters, digits, '-', '.' or '_' (starting alphanumeric)")


def _atomic_write(path: Path, data: bytes, mode: int = 0o644) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        os.write(fd, data)
        os.fchmod(fd, mode)  # an existing tmp file keeps its old mode otherwise
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _name(common: str, trust_domain: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, trust_domain),
            x509.NameAttribute(NameOID.COMMON_NAME, common),
        ]
    )


def _usage(*, ca: bool) -> x509.KeyUsage:
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=False,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )


def _ca_cert(
    subject: x509.Name,
    key: ec.EllipticCurvePrivateKey,
    issuer: tuple[x509.Name, ec.EllipticCurvePrivateKey],
    *,
    trust_domain: str,
    days: float,
    path_length: int,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer[0])
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - _BACKDATE)
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_usage(ca=True), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(_SPIFFE + trust_domain)]), False
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(_akid(issuer[1]), critical=False)
        .sign(issuer[1], hashes.SHA256())
    )


def _akid(issuer_key: ec.EllipticCurvePrivateKey) -> x509.AuthorityKeyIdentifier:
    """Which key signed: lets verifiers pick the right root when two share a bundle."""
    return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())


def _ca_files(directory: Path) -> tuple[Path, ...]:
    return tuple(directory / n for n in ("root.pem", "root.key", "ca.pem", "ca.key", "bundle.pem"))


def init_ca(directory: Path, trust_domain: str = DEFAULT_TRUST_DOMAIN, *, rotate: bool = False) -> Path:
    """Creates the root and intermediate in ``directory``; returns the bundle path.

    ``rotate``: the directory already holds a CA; its files move to
    ``retired/<timestamp>/`` and its root stays in the bundle next to the new one.
    """
    _check_name("trust domain", trust_domain)
    directory.mkdir(parents=True, exist_ok=True)
    existing = [p for p in _ca_files(directory) if p.exists()]
    old_roots = b""
    if existing and not rotate:
        raise CaError(
            f"{directory} already holds a CA ({existing[0].name}); use --rotate to replace its root"
        )
    if rotate:
        if not (directory / "root.pem").exists():
            raise CaError(f"{directory}: no CA to rotate (run 'grpcmesh ca init' first)")
        old_roots = _pem(x509.load_pem_x509_certificate((directory / "root.pem").read_bytes()))
        stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
        retired = directory / "retired" / stamp
        retired.mkdir(parents=True)
        for path in existing:
            shutil.copy2(path, retired / path.name)
    root_key = ec.generate_private_key(ec.SECP256R1())
    generation = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d%H%M%S")  # two roots, two names
    root_name = _name(f"{trust_domain} root {generation}", trust_domain)
    root = _ca_cert(
        root_name, root_key, (root_name, root_key), trust_domain=trust_domain, days=ROOT_DAYS, path_length=1
    )
    inter_key = ec.generate_private_key(ec.SECP256R1())
    inter = _ca_cert(
        _name(f"{trust_domain} intermediate {generation}", trust_domain),
        inter_key,
        (root_name, root_key),
        trust_domain=trust_domain,
        days=INTERMEDIATE_DAYS,
        path_length=0,
    )
    root_pem, root_key_pem, ca_pem, ca_key_pem, bundle = _ca_files(directory)
    _atomic_write(root_key_pem, _key_pem(root_key), 0o600)
    _atomic_write(ca_key_pem, _key_pem(inter_key), 0o600)
    _atomic_write(root_pem, _pem(root))
    _atomic_write(ca_pem, _pem(inter))
    _atomic_write(bundle, _pem(root) + old_roots)
    return bundle


def finish_rotation(directory: Path) -> Path:
    """Every leaf now chains to the new root: the bundle trusts only it again."""
    root = directory / "root.pem"
    if not root.exists():
        raise CaError(f"{directory}: no CA here (run 'grpcmesh ca init' first)")
    bundle = directory / "bundle.pem"
    _atomic_write(bundle, root.read_bytes())
    return bundle


@dataclass(frozen=True)
class IssuedFiles:
    cert: Path  # the leaf followed by the intermediate (what a TLS peer needs to build the chain)
    key: Path
    bundle: Path
    identity: str

    def flags(self) -> list[str]:
        """``grpcmesh sidecar`` flags using these files."""
        return ["--tls-cert", str(self.cert), "--tls-key", str(self.key), "--tls-ca", str(self.bundle)]


def _load_signer(directory: Path) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey, str]:
    try:
        inter = x509.load_pem_x509_certificate((directory / "ca.pem").read_bytes())
        key = serialization.load_pem_private_key((directory / "ca.key").read_bytes(), password=None)
    except FileNotFoundError as err:
        raise CaError(
            f"{directory}: no CA here ({Path(err.filename).name} missing; run 'grpcmesh ca init')"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise CaError(f"{directory / 'ca.key'}: not an EC private key")
    domains = [n.value for n in inter.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    return inter, key, str(domains[0]) if domains else DEFAULT_TRUST_DOMAIN


def issue(
    ca_dir: Path,
    service: str,
    out_dir: Path,
    *,
    hours: float = DEFAULT_LEAF_HOURS,
    now: datetime.datetime | None = None,
) -> IssuedFiles:
    """A leaf for ``service`` in ``out_dir``: ``<service>.pem``, ``<service>.key`` and ``bundle.pem``.

    The key is written before the certificate, so a watcher that sees the new
    certificate finds its key already in place. ``now`` backdates (tests).
    """
    _check_name("service", service)
    if not 0 < hours <= 24 * 366:
        raise CaError(f"hours: {hours} must be within (0, 8784]")
    inter, inter_key, trust_domain = _load_signer(ca_dir)
    ident = spiffe_id(trust_domain, service)
    key = ec.generate_private_key(ec.SECP256R1())
    start = (now or datetime.datetime.now(datetime.UTC)) - _BACKDATE
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(service, trust_domain))
        .issuer_name(inter.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(start + _BACKDATE + datetime.timedelta(hours=hours))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_usage(ca=False), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.UniformResourceIdentifier(ident), x509.DNSName(service)]),
            critical=False,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .add_extension(_akid(inter_key), critical=False)
        .sign(inter_key, hashes.SHA256())
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    files = IssuedFiles(out_dir / f"{service}.pem", out_dir / f"{service}.key", out_dir / "bundle.pem", ident)
    _atomic_write(files.bundle, (ca_dir / "bundle.pem").read_bytes())
    _atomic_write(files.key, _key_pem(key), 0o600)
    _atomic_write(files.cert, _pem(cert) + _pem(inter))
    return files

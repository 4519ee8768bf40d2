"""The mesh CA: SPIFFE + DNS SANs, 0600 keys, short leaves, a two-root bundle during rotation."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest
from cryptography import x509

from grpcmesh.cli.main import main
from grpcmesh.sdk import pki

pytestmark = pytest.mark.unit


def test_init_and_issue_write_spiffe_leaves_and_private_keys(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    pki.init_ca(ca, "example.org")
    files = pki.issue(ca, "orders", tmp_path / "orders")
    for key in (ca / "root.key", ca / "ca.key", files.key):
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
    leaf, inter = x509.load_pem_x509_certificates(files.cert.read_bytes())
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.UniformResourceIdentifier) == ["spiffe://example.org/service/orders"]
    assert san.get_values_for_type(x509.DNSName) == ["orders"]
    assert (leaf.not_valid_after_utc - leaf.not_valid_before_utc).total_seconds() <= 24 * 3600 + 300
    assert leaf.issuer == inter.subject
    assert files.identity == pki.spiffe_id("example.org", "orders")
    assert pki.service_of(files.identity) == "orders"


def test_rotation_bundle_holds_both_roots_until_finished(tmp_path: Path) -> None:
    ca = tmp_path / "ca"
    pki.init_ca(ca)
    with pytest.raises(pki.CaError, match="--rotate"):
        pki.init_ca(ca)
    pki.init_ca(ca, rotate=True)
    assert len(pki.describe((ca / "bundle.pem").read_bytes())) == 2
    pki.finish_rotation(ca)
    assert len(pki.describe((ca / "bundle.pem").read_bytes())) == 1


def test_cli_errors_are_clear(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["ca", "issue", "web", "--dir", str(tmp_path / "none")]) == 2
    assert "no CA here" in capsys.readouterr().err
    assert main(["ca", "init", "--dir", str(tmp_path / "ca")]) == 0
    assert main(["ca", "issue", "bad/name", "--dir", str(tmp_path / "ca")]) == 2
    assert "service" in capsys.readouterr().err
    out = ["--out", str(tmp_path / "out")]
    assert main(["ca", "issue", "web", "--hours", "0", "--dir", str(tmp_path / "ca"), *out]) == 2
    assert "hours" in capsys.readouterr().err
    assert main(["ca", "inspect", "--dir", str(tmp_path / "ca")]) == 0
    assert "spiffe://grpcmesh.local" in capsys.readouterr().out

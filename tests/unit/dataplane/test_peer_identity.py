"""The identity an inbound sidecar takes from a verified client certificate (x-mesh-source)."""

from __future__ import annotations

from grpcmesh.sidecar.h2.server import peer_identity


def test_no_certificate_is_no_identity() -> None:
    assert peer_identity(None) is None
    assert peer_identity({}) is None


def test_the_dns_san_names_the_service() -> None:
    cert = {"subjectAltName": (("URI", "spiffe://td/service/other"), ("DNS", "orders"))}
    assert peer_identity(cert) == "orders"


def test_a_spiffe_only_certificate_names_its_service() -> None:
    assert peer_identity({"subjectAltName": (("URI", "spiffe://mesh.local/service/billing"),)}) == "billing"


def test_a_certificate_naming_no_service_is_an_empty_identity_not_none() -> None:
    """Not None: None would let the caller's own x-mesh-source header through."""
    assert peer_identity({"subject": ((("commonName", "x"),),), "subjectAltName": ()}) == ""
    assert peer_identity({"subjectAltName": (("URI", "https://example.test/x"),)}) == ""

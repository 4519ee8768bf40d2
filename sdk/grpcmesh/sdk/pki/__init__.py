"""The mesh PKI: a CA issuing short-lived SPIFFE certificates, and a reader for PEM files."""

from grpcmesh.sdk.pki.ca import (
    DEFAULT_LEAF_HOURS,
    DEFAULT_TRUST_DOMAIN,
    CaError,
    IssuedFiles,
    finish_rotation,
    init_ca,
    issue,
    service_of,
    spiffe_id,
)
from grpcmesh.sdk.pki.certinfo import CertInfo, describe

__all__ = [
    "DEFAULT_LEAF_HOURS",
    "DEFAULT_TRUST_DOMAIN",
    "CaError",
    "CertInfo",
    "IssuedFiles",
    "describe",
    "finish_rotation",
    "init_ca",
    "issue",
    "service_of",
    "spiffe_id",
]

"""The one host:port parser: brackets, range, a reason a caller can prefix with its field."""

from __future__ import annotations

import pytest

from grpcmesh.sdk.hostport import split_host_port


@pytest.mark.parametrize(
    ("value", "kwargs", "expected"),
    [
        ("127.0.0.1:15001", {}, ("127.0.0.1", 15001)),
        ("[::1]:80", {}, ("::1", 80)),
        (" localhost:1 ", {}, ("localhost", 1)),
        ("0.0.0.0:0", {"min_port": 0}, ("0.0.0.0", 0)),
        (":8080", {"default_host": "127.0.0.1"}, ("127.0.0.1", 8080)),
    ],
)
def test_valid(value: str, kwargs: dict[str, object], expected: tuple[str, int]) -> None:
    assert split_host_port(value, **kwargs) == expected  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("value", "reason"),
    [
        ("127.0.0.1", "missing port"),
        (":15001", "missing host"),
        ("::1:15001", "put IPv6 hosts in brackets"),
        ("h:0", "port must be a number in 1..65535, got '0'"),
        ("h:65536", "port must be a number in 1..65535"),
        ("h:grpc", "port must be a number"),
        ("h:-1", "port must be a number"),
    ],
)
def test_invalid_says_why(value: str, reason: str) -> None:
    with pytest.raises(ValueError, match=reason):
        split_host_port(value)

"""ClientConfig: argument/environment precedence, address validation, retry defaults per mode."""

from __future__ import annotations

import pytest

from grpcmesh.sdk import ClientConfig, RetryConfig
from grpcmesh.sdk.client_config import DEFAULT_SIDECAR, validate_address


@pytest.mark.parametrize("address", ["127.0.0.1:15001", "localhost:1", "[::1]:15001", "unix:/tmp/mesh.sock"])
def test_valid_addresses_pass(address: str) -> None:
    assert validate_address(address) == address


def test_sidecar_comes_from_argument_then_environment_then_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("GRPCMESH_SIDECAR", raising=False)
    assert ClientConfig.build().sidecar == DEFAULT_SIDECAR
    monkeypatch.setenv("GRPCMESH_SIDECAR", "10.0.0.1:7000")
    assert ClientConfig.build().sidecar == "10.0.0.1:7000"
    assert ClientConfig.build(sidecar="127.0.0.1:9").sidecar == "127.0.0.1:9"


def test_direct_mode_from_discovery_or_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GRPCMESH_SIDECAR", "not an address")  # ignored in direct mode
    assert ClientConfig.build(discovery="file:///tmp/r.toml").direct
    monkeypatch.setenv("GRPCMESH_DISCOVERY", "consul://127.0.0.1:8500")
    cfg = ClientConfig.build(direct=True)
    assert cfg.discovery == "consul://127.0.0.1:8500"


def test_retries_off_through_the_sidecar_on_in_direct_mode() -> None:
    assert ClientConfig.build().retry is None
    assert ClientConfig.build(retry=True).retry == RetryConfig()
    direct = ClientConfig.build(discovery={"a": ["127.0.0.1:1"]})
    assert direct.retry == RetryConfig()
    assert direct.cluster.retry == RetryConfig()
    assert ClientConfig.build(discovery={"a": []}, retry=False).cluster.retry.max_attempts == 1
    custom = RetryConfig(max_attempts=5)
    assert ClientConfig.build(discovery={"a": []}, retry=custom).cluster.retry is custom

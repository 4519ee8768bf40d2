"""ClientConfig: argument/environment precedence, address validation, retry defaults per mode."""

from __future__ import annotations

from pathlib import Path

import grpc
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


SHARED = """
service = "checkout"
app = "127.0.0.1:50051"
outbound = "127.0.0.1:16001"
consul = "http://127.0.0.1:8500"

[endpoints]
orders = ["127.0.0.1:5001", "127.0.0.1:5002"]

[cluster]
balancer = "round_robin"
[cluster.retry]
max_attempts = 4
retry_codes = ["unavailable"]
[cluster.breaker]
consecutive_failures = 3
"""


def test_one_file_configures_the_sidecar_and_both_client_modes(tmp_path: Path) -> None:
    from grpcmesh.sidecar.config import load_config  # the test may look across; the sdk may not

    path = tmp_path / "mesh.toml"
    path.write_text(SHARED)
    sidecar = load_config(path, environ={})
    via_sidecar = ClientConfig.from_file(path)
    assert via_sidecar.service == "checkout"
    assert via_sidecar.sidecar == sidecar.outbound == "127.0.0.1:16001"
    assert not via_sidecar.direct
    assert via_sidecar.retry is None  # the sidecar retries

    path.write_text(
        SHARED + "\n[client]\ndirect = true\ntimeout = 4\nidempotent = ['/shop.v1.Orders/Get*']\n"
    )
    direct = ClientConfig.from_file(path)
    assert direct.direct
    assert direct.discovery == "http://127.0.0.1:8500"
    assert direct.timeout == 4
    assert direct.idempotent == ("/shop.v1.Orders/Get*",)
    assert direct.cluster == sidecar.cluster  # the same policies as the sidecar runs
    assert direct.cluster.retry.max_attempts == 4
    assert direct.cluster.retry.retry_codes == frozenset({grpc.StatusCode.UNAVAILABLE})
    assert direct.cluster.breaker.consecutive_failures == 3
    assert ClientConfig.from_file(path, timeout=9).timeout == 9  # arguments win over the file


def test_bad_client_config_files_name_the_problem(tmp_path: Path) -> None:
    path = tmp_path / "mesh.toml"
    with pytest.raises(ValueError, match=r"mesh\.toml"):
        ClientConfig.from_file(path)
    path.write_text("[client]\ndirect = true\n")
    with pytest.raises(ValueError, match=r"needs consul = URL or an \[endpoints\] table"):
        ClientConfig.from_file(path)
    path.write_text("[cluster]\nbalancr = 'p2c_ewma'\n")
    with pytest.raises(ValueError, match=r"\[cluster\].*balancr"):
        ClientConfig.from_file(path)
    path.write_text("outbound = 'http://x:1'\n")
    with pytest.raises(ValueError, match="drop the URL scheme"):
        ClientConfig.from_file(path)

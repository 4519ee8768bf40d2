"""Resilience settings read from sidecar TOML: defaults, app failure codes, a gRPC service config."""

from __future__ import annotations

import json
from pathlib import Path

import grpc
import pytest

from grpcmesh.sidecar.config import ConfigError, load_config

BASE = 'service = "o"\napp = "127.0.0.1:1"\n'
RETRY = {
    "maxAttempts": 4,
    "initialBackoff": "0.05s",
    "maxBackoff": "1s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE", "INTERNAL"],
}


def write(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "sidecar.toml"
    path.write_text(BASE + body)
    return path


def test_defaults_never_count_app_answers_and_cap_ejection(tmp_path: Path) -> None:
    cfg = load_config(write(tmp_path, ""), environ={})
    assert cfg.cluster.breaker.app_failure_codes == frozenset()
    assert cfg.cluster.breaker.max_ejection_percent == 50.0
    assert cfg.cluster.breaker.panic_threshold_percent == 50.0
    assert cfg.cluster.retry.retry_codes == frozenset({grpc.StatusCode.UNAVAILABLE})
    assert cfg.max_message_bytes == 0  # no per-message cap unless configured


def test_per_service_app_codes_and_service_config(tmp_path: Path) -> None:
    doc = json.dumps({"methodConfig": [{"name": [{"service": "shop.v1.Orders"}], "retryPolicy": RETRY}]})
    body = (
        "[services.orders.breaker]\napp_failure_codes = ['internal']\n"
        f"[services.orders.retry]\nservice_config = '{doc}'\n"
    )
    cfg = load_config(write(tmp_path, body), environ={})
    orders = cfg.cluster_for("orders")
    assert orders.breaker.app_failure_codes == frozenset({grpc.StatusCode.INTERNAL})
    assert "shop.v1.Orders" in orders.retry.service_config


def test_a_bad_service_config_names_the_key(tmp_path: Path) -> None:
    doc = json.dumps(
        {"methodConfig": [{"name": [{"service": "s"}], "retryPolicy": {**RETRY, "maxAttempts": 0}}]}
    )
    with pytest.raises(ConfigError, match=r"^cluster\.retry.*maxAttempts"):
        load_config(write(tmp_path, f"[cluster.retry]\nservice_config = '{doc}'\n"), environ={})
    with pytest.raises(ConfigError, match=r"max_message_bytes"):
        load_config(write(tmp_path, "max_message_bytes = 10\n"), environ={})

"""The deploy/ examples stay loadable as the config code evolves."""

from __future__ import annotations

from pathlib import Path

from grpcmesh.sidecar.config import load_config

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def test_sidecar_example_config_loads() -> None:
    cfg = load_config(DEPLOY / "sidecar.toml", environ={})
    assert (cfg.service, cfg.app, cfg.consul) == ("orders", "127.0.0.1:50051", "http://127.0.0.1:8500")
    assert cfg.tracing.sample_ratio == 0.01
    assert cfg.drain_timeout_s == 20

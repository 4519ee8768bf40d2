"""One configuration story: shared discovery defaults, GRPCMESH_CFG__ overrides, errors that say where."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from grpcmesh.sdk.discovery import DEFAULT_REGISTRY_FILE, RegistryFileError, registry_file
from grpcmesh.sdk.discovery.static import parse_registry
from grpcmesh.sidecar.config import ConfigError, load_config

BASE = {"service": "orders", "app": "127.0.0.1:50051"}


def test_config_overrides_live_under_their_own_prefix() -> None:
    env = {
        "GRPCMESH_CFG__TRACING__SAMPLE_RATIO": "0.25",
        "GRPCMESH_CFG__MAX_CONCURRENCY": "7",
        # plain settings every command shares: never config keys, never "unknown key"
        "GRPCMESH_SIDECAR": "127.0.0.1:15001",
        "GRPCMESH_REGISTRY": "mesh.toml",
        "GRPCMESH_TRACE_DB": "traces.db",
        "GRPCMESH_GATEWAY_JWT_SECRET": "x" * 32,
    }
    cfg = load_config(None, BASE, environ=env)
    assert (cfg.tracing.sample_ratio, cfg.max_concurrency) == (0.25, 7)
    assert cfg.endpoints_file == "mesh.toml"


def test_the_old_env_form_still_works_with_a_deprecation_warning(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        cfg = load_config(None, BASE, environ={"GRPCMESH_MAX_CONCURRENCY": "3"})
    assert cfg.max_concurrency == 3
    assert "GRPCMESH_MAX_CONCURRENCY is deprecated: use GRPCMESH_CFG__MAX_CONCURRENCY" in caplog.text


def test_discovery_defaults_are_the_sdks() -> None:
    assert load_config(None, BASE, environ={}).endpoints_file == DEFAULT_REGISTRY_FILE
    assert load_config(None, BASE, environ={"GRPCMESH_DISCOVERY": "file://reg.toml"}).endpoints_file == (
        "file://reg.toml"
    )
    via_consul = load_config(None, BASE, environ={"GRPCMESH_DISCOVERY": "consul://127.0.0.1:8500"})
    assert (via_consul.consul, via_consul.endpoints_file) == ("consul://127.0.0.1:8500", None)
    explicit = load_config(None, {**BASE, "endpoints": {"a": ("127.0.0.1:1",)}}, environ={})
    assert explicit.endpoints_file is None


def test_a_bad_env_value_names_the_variable() -> None:
    with pytest.raises(ConfigError) as err:
        load_config(None, BASE, environ={"GRPCMESH_CFG__CLUSTER__RETRY__MAX_ATTEMPTS": "0"})
    assert str(err.value).startswith("cluster.retry.max_attempts: ")
    assert str(err.value).endswith("(from env GRPCMESH_CFG__CLUSTER__RETRY__MAX_ATTEMPTS)")


def test_a_bad_file_value_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "orders.toml"
    path.write_text('service = "orders"\napp = "127.0.0.1:50051"\n\n[tracing]\nsample_ratio = 3\n')
    with pytest.raises(ConfigError, match=rf"tracing.sample_ratio: .* \(from {path}:5\)$"):
        load_config(path, environ={})


def test_a_typo_is_an_unknown_key_not_a_missing_one(tmp_path: Path) -> None:
    path = tmp_path / "orders.toml"
    path.write_text('serivce = "orders"\napp = "127.0.0.1:50051"\n')
    with pytest.raises(ConfigError, match=rf"^serivce: unknown key .* \(from {path}:1\)$"):
        load_config(path, environ={})


def test_a_bad_flag_value_names_the_flag() -> None:
    with pytest.raises(ConfigError, match=r"drain_timeout_s: .* \(from flag --drain-timeout\)$"):
        load_config(
            None, {**BASE, "drain_timeout_s": -1}, environ={}, flags={"drain_timeout_s": "--drain-timeout"}
        )
    with pytest.raises(ConfigError, match=r"max_concurrency: .* \(from flag --max-concurrency\)$"):
        load_config(None, {**BASE, "max_concurrency": 0}, environ={})


def test_otlp_without_its_extra_is_a_config_error() -> None:
    try:
        import opentelemetry.exporter.otlp.proto.grpc  # noqa: F401
    except ImportError:
        with pytest.raises(ConfigError, match=r"tracing.exporter: 'otlp' needs the extra: pip install"):
            load_config(None, {**BASE, "tracing": {"exporter": "otlp"}}, environ={})
    else:  # pragma: no cover - the extra is installed here
        assert (
            load_config(None, {**BASE, "tracing": {"exporter": "otlp"}}, environ={}).tracing.exporter
            == "otlp"
        )


@pytest.mark.parametrize(
    ("url", "path"),
    [
        ("file://registry.toml", "registry.toml"),
        ("file://conf/registry.toml", "conf/registry.toml"),
        ("file:///etc/grpcmesh/registry.toml", "/etc/grpcmesh/registry.toml"),
        ("file://localhost/etc/r.toml", "/etc/r.toml"),
        ("registry.json", "registry.json"),
        ("consul://127.0.0.1:8500", None),
        ("127.0.0.1:8500", None),
    ],
)
def test_file_urls_relative_and_absolute(url: str, path: str | None) -> None:
    assert registry_file(url) == path


def test_a_registry_key_typo_is_reported_as_unknown_at_its_line(tmp_path: Path) -> None:
    path = tmp_path / "registry.toml"
    text = '[[services.orders]]\naddress = "127.0.0.1"\nprot = 50051\n'
    with pytest.raises(RegistryFileError, match=r":3:1: services.orders\[0\]: unknown key 'prot'"):
        parse_registry(path, text)

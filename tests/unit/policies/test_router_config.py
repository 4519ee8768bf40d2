"""Router order and zero-config discovery by proto service name; config validation and masking."""

from __future__ import annotations

import json

import pytest

from grpcmesh.sdk.discovery import Endpoint, MemoryResolver
from grpcmesh.sidecar.config import ConfigError, SidecarConfig, load_config, mask_url, masked
from grpcmesh.sidecar.router import RouteError, Router, candidates


def test_candidates() -> None:
    assert candidates("shop.v1.Orders")[:2] == ["orders", "order"]
    assert "payment" in candidates("shop.v1.PaymentService")


async def test_route_by_advertised_grpc_services() -> None:
    resolver = MemoryResolver(
        {"orders": [Endpoint("127.0.0.1", 1, meta={"grpc_services": "shop.v1.Orders,grpc.health.v1.Health"})]}
    )
    router = Router(resolver)
    assert await router.route("/shop.v1.Orders/Create", []) == "orders"
    assert router.cached("/shop.v1.Orders/Get", []) == "orders"


async def test_header_then_routes_then_discovery() -> None:
    router = Router(MemoryResolver(), {"shop.v1.Orders": "orders-v2"})
    assert router.cached("/shop.v1.Orders/Create", [("x-mesh-service", "pinned")]) == "pinned"
    assert await router.route("/shop.v1.Orders/Create", []) == "orders-v2"


async def test_advertising_other_services_is_not_a_match() -> None:
    resolver = MemoryResolver({"orders": [Endpoint("127.0.0.1", 1, meta={"grpc_services": "shop.v1.Other"})]})
    with pytest.raises(RouteError, match=r"shop\.v1\.Orders"):
        await Router(resolver).route("/shop.v1.Orders/Create", [])


def test_config_layers_and_errors() -> None:
    cfg = load_config(
        overrides={"service": "orders", "app": "127.0.0.1:5000", "max_concurrency": 9},
        environ={
            "GRPCMESH_MAX_CONCURRENCY": "3",
            "GRPCMESH_TRACING__SAMPLE_RATIO": "0.25",
            "GRPCMESH_CONSUL_TOKEN": "t0p",
        },
    )
    assert cfg.max_concurrency == 9  # flags beat env
    assert cfg.tracing.sample_ratio == 0.25
    assert masked(cfg)["consul_token"] == "***"
    with pytest.raises(ConfigError, match=r"^cluster\.breaker\.failure_rate"):
        load_config(
            overrides={"service": "o", "app": "127.0.0.1:1", "cluster": {"breaker": {"failure_rate": 2}}},
            environ={},
        )
    with pytest.raises(ConfigError, match=r"^cluster\.retry\.retry_codes: unknown status code"):
        load_config(
            overrides={"service": "o", "app": "127.0.0.1:1", "cluster": {"retry": {"retry_codes": ["NOPE"]}}},
            environ={},
        )
    with pytest.raises(ConfigError, match=r"^colour: unknown key"):
        load_config(overrides={"service": "o", "app": "127.0.0.1:1", "colour": "blue"}, environ={})


def test_the_sdk_client_table_in_a_shared_file_is_ignored(tmp_path: object) -> None:
    from pathlib import Path

    path = Path(str(tmp_path)) / "mesh.toml"
    path.write_text('service = "o"\napp = "127.0.0.1:1"\n[client]\ndirect = true\n')
    assert load_config(path, environ={}).service == "o"


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("http://127.0.0.1:8500?token=s3cr3t", "http://127.0.0.1:8500?token=***"),
        ("http://consul:8500/?dc=a&ACCESS_TOKEN=s3cr3t", "http://consul:8500/?dc=a&ACCESS_TOKEN=***"),
        ("postgresql://app:s3cr3t@db:5432/x?password=s3cr3t", "postgresql://***@db:5432/x?password=***"),
        ("redis://:s3cr3t@cache/0?api_key=s3cr3t#f", "redis://***@cache/0?api_key=***#f"),
        ("file:///etc/registry.toml", "file:///etc/registry.toml"),
    ],
)
def test_config_page_masks_secrets_inside_urls(url: str, shown: str) -> None:
    assert mask_url(url) == shown
    assert "s3cr3t" not in json.dumps(masked(SidecarConfig(service="a", app="127.0.0.1:1", consul=url)))

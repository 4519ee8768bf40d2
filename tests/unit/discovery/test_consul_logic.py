"""Pure pieces of the Consul resolver: answer parsing, backoff, snapshot publication, the factory."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from grpcmesh.sdk.discovery import (
    ConsulResolver,
    Endpoint,
    MemoryResolver,
    Resolver,
    StaticResolver,
    resolver_from_url,
)
from grpcmesh.sdk.discovery.consul import backoff_delay, endpoints_from_health
from grpcmesh.sdk.discovery.published import Published

HEALTH_ANSWER = [
    {
        "Node": {"Node": "n1", "Address": "10.0.0.9"},
        "Service": {
            "ID": "orders-b",
            "Service": "orders",
            "Address": "",
            "Port": 7001,
            "Tags": ["v2"],
            "Meta": {"grpc_services": "shop.v1.Orders"},
            "Weights": {"Passing": 3, "Warning": 1},
        },
    },
    {
        "Node": {"Node": "n1", "Address": "10.0.0.9"},
        "Service": {"ID": "orders-a", "Service": "orders", "Address": "127.0.0.1", "Port": 7000},
    },
]


def test_endpoints_from_health_maps_consul_fields() -> None:
    a, b = endpoints_from_health(HEALTH_ANSWER)
    assert (a.id, a.target, a.weight, a.tags, dict(a.meta)) == ("orders-a", "127.0.0.1:7000", 1, (), {})
    assert (b.id, b.target, b.weight, b.tags) == ("orders-b", "10.0.0.9:7001", 3, ("v2",))
    assert b.meta["grpc_services"] == "shop.v1.Orders"
    assert endpoints_from_health(None) == ()


def test_backoff_grows_exponentially_with_bounded_jitter() -> None:
    lows = [backoff_delay(n, base=0.1, cap=5.0, rng=lambda: 0.0) for n in range(1, 10)]
    highs = [backoff_delay(n, base=0.1, cap=5.0, rng=lambda: 1.0) for n in range(1, 10)]
    assert lows[:4] == pytest.approx([0.05, 0.1, 0.2, 0.4])
    assert highs[:4] == pytest.approx([0.1, 0.2, 0.4, 0.8])
    assert max(highs) == pytest.approx(5.0)
    assert min(lows[-3:]) == pytest.approx(2.5)  # never a tight loop, even at the cap


async def test_published_wakes_watchers_only_on_change() -> None:
    pub = Published("orders")
    eps = (Endpoint("127.0.0.1", 1, meta={"v": "1"}),)
    changes = pub.changes()
    pending = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    assert not pending.done()  # nothing published yet
    assert pub.publish(eps)
    assert (await asyncio.wait_for(pending, 1)).endpoints == eps
    assert not pub.publish(eps)  # same answer again: renewed, no wake-up
    pending = asyncio.ensure_future(anext(changes))
    await asyncio.sleep(0)
    assert not pending.done()
    assert pub.publish((Endpoint("127.0.0.1", 1, meta={"v": "2"}),))  # meta alone is a change
    assert dict((await asyncio.wait_for(pending, 1)).endpoints[0].meta) == {"v": "2"}
    pub.close()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(changes), 1)


async def test_published_stale_keeps_endpoints_and_age() -> None:
    pub = Published("orders")
    eps = (Endpoint("127.0.0.1", 1),)
    pub.publish(eps)
    confirmed = pub.current.updated_at
    assert pub.mark_stale()
    assert pub.current.stale
    assert pub.current.endpoints == eps
    assert pub.current.updated_at == confirmed  # age keeps counting from the last real answer
    assert not pub.mark_stale()  # already stale: no second wake-up
    assert pub.publish(eps)  # fresh again is a change (stale flag flips)
    assert not pub.current.stale


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("consul://127.0.0.1:8500", "http://127.0.0.1:8500"),
        ("http://10.1.2.3:8501", "http://10.1.2.3:8501"),
        ("https://consul.internal:8501", "https://consul.internal:8501"),
        ("localhost:8500", "http://localhost:8500"),
        ("127.0.0.1:8500", "http://127.0.0.1:8500"),
    ],
)
async def test_factory_consul_urls(url: str, expected: str) -> None:
    resolver = resolver_from_url(url + "?dc=eu1&tag=v2&wait=5s")
    assert isinstance(resolver, ConsulResolver)
    assert isinstance(resolver, Resolver)
    assert (resolver.url, resolver.datacenter, resolver.tag, resolver.wait) == (expected, "eu1", "v2", "5s")
    await resolver.close()


async def test_factory_files_and_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "reg.toml"
    for url in (f"file://{path}", str(path)):
        resolver = resolver_from_url(url)
        assert isinstance(resolver, StaticResolver)
        assert resolver.path == path
    monkeypatch.setenv("GRPCMESH_REGISTRY", str(path))
    default = resolver_from_url(None)
    assert isinstance(default, StaticResolver)
    assert default.path == path
    monkeypatch.delenv("GRPCMESH_REGISTRY")
    assert isinstance(resolver_from_url(""), StaticResolver)
    assert isinstance(MemoryResolver(), Resolver)


@pytest.mark.parametrize("url", ["redis://localhost:6379", "consul://"])
def test_factory_rejects_unknown_schemes(url: str) -> None:
    with pytest.raises(ValueError, match="registry URL"):
        resolver_from_url(url)

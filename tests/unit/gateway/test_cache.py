"""Cache keys (canonical query, per subject), TTL with an injected clock, LRU bound."""

from __future__ import annotations

import pytest

from grpcmesh.services.gateway.cache import CachedResponse, ResponseCache, cache_directives, cache_key

R = CachedResponse(200, "application/json", b"[]")


def test_query_order_does_not_matter() -> None:
    a = cache_key("GET", "/v1/streams/s", [("a", "1"), ("b", "2")], "alice")
    b = cache_key("GET", "/v1/streams/s", [("b", "2"), ("a", "1")], "alice")
    assert a == b


@pytest.mark.parametrize(
    "other",
    [
        ("POST", "/v1/streams/s", [("a", "1")], "alice"),
        ("GET", "/v1/streams/t", [("a", "1")], "alice"),
        ("GET", "/v1/streams/s", [("a", "2")], "alice"),
        ("GET", "/v1/streams/s", [("a", "1"), ("a", "1")], "alice"),
        ("GET", "/v1/streams/s", [("a", "1")], "bob"),
        ("GET", "/v1/streams/s", [("a", "1")], None),
    ],
)
def test_every_part_of_the_key_matters(other: tuple[str, str, list[tuple[str, str]], str | None]) -> None:
    assert cache_key("GET", "/v1/streams/s", [("a", "1")], "alice") != cache_key(*other)


def test_separators_cannot_be_forged() -> None:
    assert cache_key("GET", "/p", [("a", "1&b=2")], None) != cache_key(
        "GET", "/p", [("a", "1"), ("b", "2")], None
    )
    assert cache_key("GET", "/p", [], "x sub=y") != cache_key("GET", "/p", [], "x")


def test_ttl_expiry() -> None:
    now = [0.0]
    cache = ResponseCache(clock=lambda: now[0])
    cache.put("k", R, ttl=2.0)
    assert cache.get("k") == R
    now[0] = 1.99
    assert cache.get("k") == R
    now[0] = 2.0
    assert cache.get("k") is None
    assert len(cache) == 0


def test_lru_bound_evicts_least_recently_used() -> None:
    cache = ResponseCache(max_entries=2, clock=lambda: 0.0)
    cache.put("a", R, 10)
    cache.put("b", R, 10)
    assert cache.get("a") is not None  # a is now the most recent
    cache.put("c", R, 10)
    assert cache.get("b") is None
    assert cache.get("a") is not None
    assert cache.get("c") is not None


def test_zero_ttl_is_not_stored() -> None:
    cache = ResponseCache()
    cache.put("k", R, 0)
    assert cache.get("k") is None


def test_directives() -> None:
    assert cache_directives("No-Cache, max-age=0") == {"no-cache", "max-age"}
    assert cache_directives(None) == frozenset()

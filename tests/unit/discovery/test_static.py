"""Static-file registry: schema, reload on change, malformed files keep the last good endpoints."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Callable
from pathlib import Path

import grpc
import pytest

from grpcmesh.sdk.discovery import (
    Endpoint,
    Resolution,
    ResolveError,
    StaticResolver,
    require_endpoints,
)
from grpcmesh.sdk.errors import Unavailable
from tests.support.procs import wait_for_async

GOOD = """
[[services.orders]]
address = "127.0.0.1"
port = 50051
tags = ["v1"]
meta = { zone = "a" }
weight = 2

[[services.orders]]
address = "127.0.0.1"
port = 50052
"""


async def eventually(predicate: Callable[[], object], what: str) -> None:
    """Polls a plain predicate (bounded) while the event loop keeps running the reloader."""

    async def check() -> object:
        return predicate()

    await wait_for_async(check, timeout=5, what=what)


def write(path: Path, text: str) -> None:
    """Writes atomically (rename), like editors and config management do."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    path = tmp_path / "registry.toml"
    write(path, GOOD)
    return path


async def test_reads_toml_schema(registry: Path) -> None:
    async with StaticResolver(registry, interval=0.02) as resolver:
        res = await resolver.resolve("orders")
        assert [ep.target for ep in res.endpoints] == ["127.0.0.1:50051", "127.0.0.1:50052"]
        first = res.endpoints[0]
        assert first.tags == ("v1",)
        assert dict(first.meta) == {"zone": "a"}
        assert first.weight == 2
        assert first.id == "orders-127.0.0.1-50051"
        assert res.endpoints[1].weight == 1
        assert not res.stale
        assert resolver.last_error is None


async def test_reads_json_schema(tmp_path: Path) -> None:
    path = tmp_path / "registry.json"
    write(path, '{"services": {"pay": [{"address": "::1", "port": 7000, "id": "pay-a"}]}}')
    async with StaticResolver(path) as resolver:
        (ep,) = (await resolver.resolve("pay")).endpoints
        assert (ep.id, ep.target) == ("pay-a", "[::1]:7000")


async def test_edit_is_picked_up_and_watch_yields(registry: Path) -> None:
    async with StaticResolver(registry, interval=0.02) as resolver:
        watch = resolver.watch("orders")
        first = await asyncio.wait_for(anext(watch), 5)
        assert len(first.endpoints) == 2
        write(registry, GOOD + '\n[[services.orders]]\naddress = "10.0.0.3"\nport = 50053\n')
        second = await asyncio.wait_for(anext(watch), 5)
        assert [ep.port for ep in second.endpoints] == [50051, 50052, 50053]
        assert (await resolver.resolve("orders")) is second
        await watch.aclose()


async def test_unchanged_rewrite_does_not_wake_watchers(registry: Path) -> None:
    async with StaticResolver(registry, interval=0.02) as resolver:
        watch = resolver.watch("orders")
        await asyncio.wait_for(anext(watch), 5)
        reloads = resolver.reloads
        write(registry, GOOD + "\n# a comment only\n")
        await eventually(lambda: resolver.reloads > reloads, "the rewrite to be re-read")
        pending = asyncio.ensure_future(anext(watch))
        write(registry, GOOD.replace("50052", "50059"))
        changed = await asyncio.wait_for(pending, 5)
        assert [ep.port for ep in changed.endpoints] == [50051, 50059]
        await watch.aclose()


@pytest.mark.parametrize(
    ("suffix", "bad", "line"),
    [
        (".toml", '[[services.orders]]\naddress = "127.0.0.1"\nport = = 1\n', 3),
        (".json", '{"services": {\n  "orders": [\n    {"address": "h", "port": 1},,\n  ]}}', 3),
    ],
)
async def test_malformed_file_names_file_and_line_and_keeps_endpoints(
    tmp_path: Path, suffix: str, bad: str, line: int, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / f"registry{suffix}"
    write(
        path,
        '{"services": {"orders": [{"address": "127.0.0.1", "port": 50051}]}}' if suffix == ".json" else GOOD,
    )
    async with StaticResolver(path, interval=0.02) as resolver:
        before = await resolver.resolve("orders")
        assert before.endpoints
        write(path, bad)
        await eventually(lambda: resolver.last_error is not None, "the bad file to be seen")
        err = resolver.last_error
        assert err is not None
        assert err.path == path
        assert err.line == line
        assert str(err).startswith(f"{path}:{line}:")
        assert f"{path}:{line}:" in caplog.text
        assert (await resolver.resolve("orders")).endpoints == before.endpoints
        write(path, GOOD if suffix == ".toml" else '{"services": {"orders": []}}')
        await eventually(lambda: resolver.last_error is None, "recovery")


async def test_schema_error_names_field_and_table_line(registry: Path) -> None:
    write(registry, GOOD + '\n[[services.orders]]\naddress = "h"\nport = 70000\n')
    async with StaticResolver(registry) as resolver:
        err = resolver.last_error
        assert err is not None
        assert "services.orders[2].port" in str(err)
        assert err.line == GOOD.count("\n") + 2


async def test_missing_file_is_an_empty_registry_until_it_appears(tmp_path: Path) -> None:
    path = tmp_path / "later.toml"
    async with StaticResolver(path, interval=0.02) as resolver:
        assert (await resolver.resolve("orders")).endpoints == ()
        assert resolver.last_error is None
        write(path, GOOD)
        await eventually(lambda: resolver.services().get("orders"), "the new file to be loaded")


async def test_unknown_service_is_empty_and_unavailable_at_call_time(registry: Path) -> None:
    async with StaticResolver(registry) as resolver:
        res = await resolver.resolve("nope")
        assert res == Resolution("nope", (), updated_at=res.updated_at)
        with pytest.raises(ResolveError) as info:
            require_endpoints(res)
        assert isinstance(info.value, Unavailable)
        assert info.value.code is grpc.StatusCode.UNAVAILABLE
        assert "'nope'" in str(info.value)
        assert "no healthy endpoints" in str(info.value)


def test_require_endpoints_explains_a_registry_outage() -> None:
    with pytest.raises(ResolveError, match="registry is unreachable"):
        require_endpoints(Resolution("orders", (), stale=True))
    eps = (Endpoint("127.0.0.1", 1),)
    assert require_endpoints(Resolution("orders", eps, stale=True)) == eps

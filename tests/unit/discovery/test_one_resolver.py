"""The sidecar, the SDK's direct mode and the gateway (direct mode through AsyncMeshClient)
build their Consul resolver in one place, so all three get the same bounded resolver."""

from __future__ import annotations

from grpcmesh.sdk.direct import make_resolver
from grpcmesh.sdk.discovery import ConsulResolver
from grpcmesh.sidecar.app import build_resolver
from grpcmesh.sidecar.config import SidecarConfig

URL = "consul://127.0.0.1:8500?max_reads=2&idle_ttl=5m"


async def test_sidecar_and_direct_mode_build_the_same_bounded_resolver() -> None:
    sidecar = build_resolver(SidecarConfig(service="web", app="127.0.0.1:1", consul=URL))
    direct, owned = make_resolver(URL)
    for resolver in (sidecar, direct):
        assert isinstance(resolver, ConsulResolver)
        assert resolver.settings.max_connections == 3
        assert resolver.settings.idle_ttl == 300.0
        await resolver.close()
    assert owned

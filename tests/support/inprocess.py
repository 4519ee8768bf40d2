"""An in-process sidecar's config on free loopback ports (tests that drive the data plane directly)."""

from __future__ import annotations

from grpcmesh.sidecar.config import SidecarConfig
from tests.support.procs import free_port


def sidecar_config(service: str = "client") -> SidecarConfig:
    """No local app (port 1 refuses); outbound, inbound and admin on free ports."""
    return SidecarConfig(
        service=service,
        app="127.0.0.1:1",
        outbound=f"127.0.0.1:{free_port()}",
        inbound=f"127.0.0.1:{free_port()}",
        admin=f"127.0.0.1:{free_port()}",
    )

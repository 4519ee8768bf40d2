"""Registration in a real Consul: meta from reflection, native gRPC check, stable ids, deregistration."""

from __future__ import annotations

import grpc
import pytest
from grpc_health.v1 import health, health_pb2_grpc

from grpcmesh.sdk.discovery.consul import consul_client
from grpcmesh.sdk.registration import Registration, list_grpc_services
from tests.integration.discovery.apps import EVENTSTORE, SERVICE, registration, start_app
from tests.support.consul import ConsulAgent
from tests.support.procs import wait_for_async


async def test_list_grpc_services_reads_reflection_without_infra_services() -> None:
    app = await start_app()
    try:
        assert await list_grpc_services(app.address) == [EVENTSTORE]
    finally:
        await app.stop(grace=0)


@pytest.mark.consul
async def test_register_check_stable_id_and_deregister(consul: ConsulAgent) -> None:
    app = await start_app()
    client = consul_client(consul.http_url)
    try:
        async with registration(consul.http_url, app) as reg:
            sid = f"{SERVICE}-127.0.0.1-{app.port}"
            assert reg.service_id == sid
            await reg.register()  # registering again replaces, never duplicates
            services = await client.agent.services()
            assert [s for s in services if s.startswith(SERVICE)] == [sid]
            assert services[sid]["Meta"] == {"zone": "test", "grpc_services": EVENTSTORE}
            assert services[sid]["Tags"] == ["v1"]
            (check,) = [c for c in (await client.agent.checks()).values() if c["ServiceID"] == sid]
            assert (check["Type"], check["Interval"], check["Timeout"]) == ("grpc", "1s", "1s")
            assert check["Name"] == f"gRPC health of {app.address}"
            assert reg.check_definition()["DeregisterCriticalServiceAfter"] == "1m"

            async def probed_ok() -> bool:
                _, checks = await client.health.checks(SERVICE)
                return any(c["CheckID"] == check["CheckID"] and c["Status"] == "passing" for c in checks)

            await wait_for_async(probed_ok, timeout=10, what="consul's gRPC check to pass against the app")
        assert sid not in await client.agent.services()
    finally:
        await client.close()
        await app.stop(grace=0)


@pytest.mark.consul
async def test_app_without_reflection_registers_with_empty_grpc_services(consul: ConsulAgent) -> None:
    server = grpc.aio.server()
    health_pb2_grpc.add_HealthServicer_to_server(health.aio.HealthServicer(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    client = consul_client(consul.http_url)
    try:
        reg = Registration(SERVICE, "127.0.0.1", port, consul_url=consul.http_url)
        async with reg:
            services = await client.agent.services()
            assert services[reg.service_id]["Meta"] == {"grpc_services": ""}
    finally:
        await client.close()
        await server.stop(0)

"""Out of the box the gateway knows the mesh names of the grpcmesh services and the orders messages."""

from __future__ import annotations

from pathlib import Path

from google.protobuf import json_format

from grpcmesh.api.v1 import commandbus_pb2
from grpcmesh.services.gateway.config import DEFAULT_SERVICES, load_config
from grpcmesh.services.gateway.routes import load_routes


def test_default_mesh_names_and_config_overrides(tmp_path: Path) -> None:
    assert load_config(None).services == DEFAULT_SERVICES
    assert DEFAULT_SERVICES["grpcmesh.api.v1.EventStore"] == "eventstore"
    path = tmp_path / "gw.toml"
    path.write_text('[services]\n"grpcmesh.api.v1.EventStore" = "events"\n"shop.v1.Orders" = "orders"\n')
    services = load_config(path).services
    assert services["grpcmesh.api.v1.EventStore"] == "events"
    assert services["shop.v1.Orders"] == "orders"
    assert services["grpcmesh.api.v1.QueryBus"] == "querybus"


def test_the_readme_command_parses_with_the_default_protos() -> None:
    load_routes(load_config(None).protos)  # imports the orders example's messages too
    body = {
        "commandId": "7c1e2a9e-4f1b-4d8e-9a51-0b7c3e2d1f00",
        "payload": {
            "@type": "type.googleapis.com/grpcmesh.api.examples.orders.v1.CreateOrder",
            "customerId": "a",
        },
    }
    command = json_format.ParseDict(body, commandbus_pb2.Command())
    assert command.payload.type_url.endswith("orders.v1.CreateOrder")

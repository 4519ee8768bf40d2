"""Routes from any descriptor set (ours and a freshly compiled foreign one), and the TOML config."""

from __future__ import annotations

import importlib
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from google.api import annotations_pb2

from grpcmesh.services.gateway.config import DEFAULT_PROTOS, load_config
from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.routes import Router, load_routes

ROUTER = Router(load_routes(list(DEFAULT_PROTOS)))


@pytest.mark.parametrize(
    ("verb", "path", "name"),
    [
        ("POST", "/v1/streams/s", "grpcmesh.api.v1.EventStore.Append"),
        ("GET", "/v1/streams/s", "grpcmesh.api.v1.EventStore.ReadStream"),
        ("HEAD", "/v1/streams/s", "grpcmesh.api.v1.EventStore.ReadStream"),
        ("POST", "/v1/commands", "grpcmesh.api.v1.CommandBus.Dispatch"),
        ("POST", "/v1/queries", "grpcmesh.api.v1.QueryBus.Query"),
        ("POST", "/v1/sagas", "grpcmesh.api.v1.SagaOrchestrator.Start"),
        ("GET", "/v1/sagas", "grpcmesh.api.v1.SagaOrchestrator.List"),
        ("GET", "/v1/sagas/s-1", "grpcmesh.api.v1.SagaOrchestrator.Get"),
    ],
)
def test_our_contracts(verb: str, path: str, name: str) -> None:
    assert ROUTER.match(verb, path)[0].name == name


def test_route_kinds() -> None:
    read = ROUTER.by_name["grpcmesh.api.v1.EventStore.ReadStream"]
    append = ROUTER.by_name["grpcmesh.api.v1.EventStore.Append"]
    assert read.server_streaming
    assert read.no_side_effects
    assert read.body == ""
    assert not append.no_side_effects
    assert append.body == "*"
    assert append.grpc_path == "/grpcmesh.api.v1.EventStore/Append"


def test_unknown_path_404_and_wrong_verb_405() -> None:
    with pytest.raises(GatewayError) as missing:
        ROUTER.match("GET", "/v2/nothing")
    assert missing.value.status == 404
    with pytest.raises(GatewayError) as wrong:
        ROUTER.match("DELETE", "/v1/streams/s")
    assert wrong.value.status == 405
    assert wrong.value.headers["Allow"] == "GET, POST"


FOREIGN = """
syntax = "proto3";
package shop.v1;
import "google/api/annotations.proto";
service Books {
  rpc GetBook(GetBookRequest) returns (Book) {
    option (google.api.http) = {
      get: "/v1/{name=shelves/*/books/*}"
      additional_bindings { get: "/v1/books/{name}" }
    };
  }
  rpc UpdateBook(UpdateBookRequest) returns (Book) {
    option (google.api.http) = { patch: "/v1/{book.name=shelves/*/books/*}" body: "book" };
  }
  rpc Upload(stream Book) returns (Book) {
    option (google.api.http) = { post: "/v1/upload" body: "*" };
  }
}
message GetBookRequest { string name = 1; }
message UpdateBookRequest { Book book = 1; }
message Book { string name = 1; string title = 2; }
"""


@pytest.fixture
def foreign_module(tmp_path: Path) -> Iterator[str]:
    """A ``shop_pb2`` compiled now with protoc, importable from tmp_path."""
    from grpc_tools import protoc

    (tmp_path / "shop.proto").write_text(FOREIGN)
    include = Path(protoc.__file__).parent / "_proto"
    googleapis = Path(annotations_pb2.__file__).parent.parent.parent
    rc = protoc.main(
        [
            "protoc",
            f"-I{tmp_path}",
            f"-I{include}",
            f"-I{googleapis}",
            f"--python_out={tmp_path}",
            "shop.proto",
        ]
    )
    assert rc == 0
    sys.path.insert(0, str(tmp_path))
    try:
        yield "shop_pb2"
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("shop_pb2", None)


def test_any_descriptor_set_can_be_served(foreign_module: str) -> None:
    from grpcmesh.services.gateway.transcode import build_request

    router = Router(load_routes([foreign_module]))
    names = sorted({r.name for r in router.routes})
    assert names == ["shop.v1.Books.GetBook", "shop.v1.Books.UpdateBook"]  # client-streaming skipped
    route, bound = router.match("GET", "/v1/books/b1")
    assert route.name == "shop.v1.Books.GetBook"
    assert bound == {"name": "b1"}
    route, bound = router.match("PATCH", "/v1/shelves/1/books/2")
    msg = build_request(route, bound, {"title": "Dune"}, [])
    book = importlib.import_module(foreign_module).UpdateBookRequest(
        book={"name": "shelves/1/books/2", "title": "Dune"}
    )
    assert msg == book


def test_unknown_proto_module_names_itself() -> None:
    with pytest.raises(ValueError, match="no_such_pb2"):
        load_routes(["no_such_pb2"])


def test_config_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GW_SECRET", "s" * 32)
    path = tmp_path / "gateway.toml"
    path.write_text(
        """
listen = "127.0.0.1:9000"
timeout = 5
[discovery]
eventstore = ["127.0.0.1:1"]
[services]
"grpcmesh.api.v1.EventStore" = "eventstore"
[auth]
secret_env = "GW_SECRET"
audience = "grpcmesh"
[rate_limit]
rate = 5
burst = 10
[cache]
ttl = 1.5
[routes."grpcmesh.api.v1.EventStore.ReadStream"]
public = true
rate = 1
burst = 2
cache_ttl = 0
"""
    )
    config = load_config(path, listen="127.0.0.1:9100")
    assert config.listen == "127.0.0.1:9100"
    assert config.auth is not None
    assert config.auth.audience == "grpcmesh"
    assert config.discovery == {"eventstore": ["127.0.0.1:1"]}
    read = "grpcmesh.api.v1.EventStore.ReadStream"
    assert config.policy(read).public
    limit = config.limit_for(read)
    assert limit is not None
    assert (limit.rate, limit.burst) == (1.0, 2)
    other = config.limit_for("grpcmesh.api.v1.EventStore.Append")
    assert other is not None
    assert (other.rate, other.burst) == (5.0, 10)
    assert config.cache_ttl_for(read) == 0
    assert config.cache_ttl_for("x") == 1.5


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("[rate_limit]\nrat = 5\n", "unknown key 'rat'"),
        ('[routes."a.B.C"]\npublik = true\n', "unknown key 'publik'"),
        ("[auth]\nsecret_env = 'GW_EMPTY_SECRET'\n", "GW_EMPTY_SECRET"),
        ("[auth]\nalgorithm = 'RS256'\n", "public_key_file"),
        ("[rate_limit]\nbackend = 'memcached://x'\n", "backend"),
        ("timeout = 0\n", "timeout"),
        ("listen = ", "gateway.toml"),
    ],
)
def test_config_errors_name_the_problem(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=problem):
        load_config(path)


def test_example_config_loads(monkeypatch: pytest.MonkeyPatch) -> None:
    import grpcmesh.services.gateway as package

    monkeypatch.setenv("GRPCMESH_GATEWAY_JWT_SECRET", "e" * 32)
    config = load_config(Path(package.__file__).parent / "gateway.example.toml")
    assert config.services["grpcmesh.api.v1.EventStore"] == "eventstore"
    assert config.policy("grpcmesh.api.v1.EventStore.Append").scopes == ("events:write",)
    assert config.cache_ttl_for("grpcmesh.api.v1.EventStore.ReadStream") == 5
    assert set(config.routes) <= set(ROUTER.by_name)


def test_rs256_key_file_relative_to_the_config(tmp_path: Path) -> None:
    (tmp_path / "jwt.pub.pem").write_text("-----BEGIN PUBLIC KEY-----\nabc\n-----END PUBLIC KEY-----\n")
    path = tmp_path / "gateway.toml"
    path.write_text('[auth]\nalgorithm = "RS256"\npublic_key_file = "jwt.pub.pem"\n')
    config = load_config(path)
    assert config.auth is not None
    assert config.auth.key.startswith("-----BEGIN PUBLIC KEY-----")
    path.write_text('[auth]\nalgorithm = "RS256"\npublic_key_file = "missing.pem"\n')
    with pytest.raises(ValueError, match=re.escape("missing.pem")):
        load_config(path)


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("rate_limit = 3\n", "[rate_limit]: must be a table"),
        ("routes = 1\n", "[routes]: must be a table"),
        ("timeout = 'soon'\n", "gateway config timeout: expected a number, got 'soon'"),
        ("[cache]\nttl = 'ten'\n", "gateway config [cache] ttl: expected a number, got 'ten'"),
        ("[rate_limit]\nburst = 2.5\n", "gateway config [rate_limit] burst: expected an integer, got 2.5"),
        ('[routes."a.B.C"]\nrate = true\n', 'gateway config [routes."a.B.C"] rate: expected a number'),
    ],
)
def test_wrong_shapes_are_config_errors(tmp_path: Path, text: str, problem: str) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(text)
    with pytest.raises(ValueError, match=re.escape(problem)):
        load_config(path)

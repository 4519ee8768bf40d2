"""The route table, read from the ``google.api.http`` annotations of registered protos.

Any generated ``*_pb2`` module can be served: its file descriptor lists the
services, each method's ``HttpRule`` (plus ``additional_bindings``) gives the
HTTP verb, path template and body mapping, and the message classes come from
the descriptors themselves, so the gateway needs no generated stubs.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from google.api import annotations_pb2
from google.protobuf import descriptor, descriptor_pb2, message_factory

from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.template import BadPathValue, PathTemplate

__all__ = ["Route", "Router", "load_routes"]

log = logging.getLogger("grpcmesh.gateway")

_NO_SIDE_EFFECTS = descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS


@dataclass(frozen=True)
class Route:
    """One HTTP binding of one gRPC method."""

    verb: str  # upper-case HTTP method
    template: PathTemplate
    body: str  # "" (no body), "*" (whole message) or a top-level field name
    response_body: str
    service: str  # proto full name, e.g. grpcmesh.api.v1.EventStore
    method: str  # e.g. Append
    input_type: Any
    output_type: Any
    server_streaming: bool
    no_side_effects: bool

    @property
    def name(self) -> str:
        """``package.Service.Method``: how config names a route."""
        return f"{self.service}.{self.method}"

    @property
    def grpc_path(self) -> str:
        """The gRPC method path, ``/package.Service/Method``."""
        return f"/{self.service}/{self.method}"


def _bindings(rule: Any) -> Iterable[Any]:
    yield rule
    yield from rule.additional_bindings


def _routes_of(method: descriptor.MethodDescriptor) -> list[Route]:
    options = method.GetOptions()
    if not options.HasExtension(annotations_pb2.http):
        return []
    if method.client_streaming:
        log.warning("skipping %s: client-streaming methods cannot be transcoded", method.full_name)
        return []
    rule = options.Extensions[annotations_pb2.http]
    routes = []
    for binding in _bindings(rule):
        kind = binding.WhichOneof("pattern")
        if kind is None:
            continue
        verb, path = (
            (binding.custom.kind, binding.custom.path) if kind == "custom" else (kind, getattr(binding, kind))
        )
        routes.append(
            Route(
                verb=verb.upper(),
                template=PathTemplate.parse(path),
                body=binding.body,
                response_body=binding.response_body,
                service=method.containing_service.full_name,
                method=method.name,
                input_type=message_factory.GetMessageClass(method.input_type),
                output_type=message_factory.GetMessageClass(method.output_type),
                server_streaming=method.server_streaming,
                no_side_effects=options.idempotency_level == _NO_SIDE_EFFECTS,
            )
        )
    return routes


def load_routes(modules: Sequence[str]) -> list[Route]:
    """Every annotated method of the named ``*_pb2`` modules; an unknown module names itself."""
    routes: list[Route] = []
    for name in modules:
        try:
            module = importlib.import_module(name)
        except ImportError as err:
            raise ValueError(f"gateway protos: cannot import {name!r}: {err}") from None
        file: descriptor.FileDescriptor | None = getattr(module, "DESCRIPTOR", None)
        if not isinstance(file, descriptor.FileDescriptor):
            raise ValueError(f"gateway protos: {name!r} is not a generated *_pb2 module")
        for service in file.services_by_name.values():
            for method in service.methods:
                routes.extend(_routes_of(method))
    return routes


class Router:
    """Finds the route for (verb, raw path): 404 when no template matches, 405 on a wrong verb."""

    def __init__(self, routes: Iterable[Route]) -> None:
        # Literal-heavy templates first, so /v1/streams/$all would beat /v1/streams/{id}.
        self.routes = sorted(routes, key=lambda r: -r.template.literal_weight)
        self.by_name = {r.name: r for r in self.routes}

    def match(self, verb: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        allowed: list[str] = []
        for route in self.routes:
            try:
                bound = route.template.match(raw_path)
            except BadPathValue as err:
                raise GatewayError.bad_request(err.field, "invalid percent-encoding or not UTF-8") from None
            if bound is None:
                continue
            if route.verb == verb or (verb == "HEAD" and route.verb == "GET"):
                return route, bound
            allowed.append(route.verb)
        if allowed:
            raise GatewayError(
                405,
                "METHOD_NOT_ALLOWED",
                f"{verb} is not allowed on {raw_path}",
                headers={"Allow": ", ".join(sorted(set(allowed)))},
            )
        raise GatewayError(404, "NOT_FOUND", f"no route for {verb} {raw_path}")

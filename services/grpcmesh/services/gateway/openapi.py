"""The gateway's OpenAPI 3.1 document, generated from the routes it actually serves.

Paths and verbs come from the ``google.api.http`` annotations (the same
:class:`~grpcmesh.services.gateway.routes.Route` objects the router matches),
schemas from the message descriptors following the proto3 JSON mapping the
transcoder uses (lowerCamelCase names, 64-bit integers as strings, enums by name,
well-known types in their JSON forms). It also describes what every route shares:
the JWT bearer scheme (when ``[auth]`` is configured; public routes opt out), the
JSON error body, and the ``X-Request-Id`` header sent and echoed. Served at
``/openapi.json`` and printed by ``grpcmesh gateway openapi``.
"""

from __future__ import annotations

from collections.abc import Iterable
from importlib.metadata import PackageNotFoundError, version
from typing import Any

from google.protobuf import descriptor

from grpcmesh.services.gateway.config import GatewayConfig
from grpcmesh.services.gateway.errors import HTTP_STATUS
from grpcmesh.services.gateway.routes import Route

__all__ = ["openapi_document"]

FD = descriptor.FieldDescriptor
_REF = "#/components/schemas/"
_INT64 = {"type": ["string", "integer"], "pattern": r"^-?[0-9]{1,18}$"}
_UINT64 = {"type": ["string", "integer"], "format": "uint64", "pattern": r"^[0-9]{1,19}$", "minimum": 0}
_SPECIAL_FLOATS = {"type": "string", "enum": ["NaN", "Infinity", "-Infinity"]}
_SCALARS: dict[int, dict[str, Any]] = {
    FD.TYPE_INT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_SINT32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_SFIXED32: {"type": "integer", "format": "int32", "minimum": -(2**31), "maximum": 2**31 - 1},
    FD.TYPE_UINT32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    FD.TYPE_FIXED32: {"type": "integer", "format": "int64", "minimum": 0, "maximum": 2**32 - 1},
    FD.TYPE_INT64: {**_INT64, "format": "int64", "minimum": -(10**18), "maximum": 10**18},
    FD.TYPE_SINT64: {**_INT64, "format": "int64", "minimum": -(10**18), "maximum": 10**18},
    FD.TYPE_SFIXED64: {**_INT64, "format": "int64", "minimum": -(10**18), "maximum": 10**18},
    FD.TYPE_UINT64: {**_UINT64, "maximum": 10**19},
    FD.TYPE_FIXED64: {**_UINT64, "maximum": 10**19},
    FD.TYPE_DOUBLE: {"oneOf": [{"type": "number"}, _SPECIAL_FLOATS]},
    FD.TYPE_FLOAT: {"oneOf": [{"type": "number", "minimum": -3.4e38, "maximum": 3.4e38}, _SPECIAL_FLOATS]},
    FD.TYPE_BOOL: {"type": "boolean"},
    FD.TYPE_STRING: {"type": "string"},
    FD.TYPE_BYTES: {"type": "string", "format": "byte", "contentEncoding": "base64"},
}
_WRAPPERS = {
    "google.protobuf.DoubleValue": FD.TYPE_DOUBLE,
    "google.protobuf.FloatValue": FD.TYPE_FLOAT,
    "google.protobuf.Int64Value": FD.TYPE_INT64,
    "google.protobuf.UInt64Value": FD.TYPE_UINT64,
    "google.protobuf.Int32Value": FD.TYPE_INT32,
    "google.protobuf.UInt32Value": FD.TYPE_UINT32,
    "google.protobuf.BoolValue": FD.TYPE_BOOL,
    "google.protobuf.StringValue": FD.TYPE_STRING,
    "google.protobuf.BytesValue": FD.TYPE_BYTES,
}
_WELL_KNOWN: dict[str, dict[str, Any]] = {
    "google.protobuf.Timestamp": {"type": "string", "format": "date-time"},
    "google.protobuf.Duration": {"type": "string", "pattern": r"^-?[0-9]{1,12}(\.[0-9]{1,9})?s$"},
    "google.protobuf.FieldMask": {"type": "string"},
    "google.protobuf.Struct": {"type": "object"},
    "google.protobuf.Value": {},
    "google.protobuf.ListValue": {"type": "array"},
    "google.protobuf.Empty": {"type": "object", "additionalProperties": False},
    "google.protobuf.Any": {
        "type": "object",
        "description": "A message of any type: its fields plus '@type' "
        "(type.googleapis.com/<full message name>, a type the gateway knows).",
        "properties": {"@type": {"type": "string"}},
        "required": ["@type"],
    },
}
_ERROR = {
    "type": "object",
    "description": "Every failure: the gRPC status name, a message, google.rpc details, the request id.",
    "properties": {
        "code": {"type": "string", "examples": ["INVALID_ARGUMENT"]},
        "message": {"type": "string"},
        "details": {
            "type": "array",
            "items": {"type": "object", "properties": {"@type": {"type": "string"}}},
        },
        "request_id": {"type": "string"},
    },
    "required": ["code", "message", "details", "request_id"],
}
_REQUEST_ID = {
    "description": "Request id: the caller's X-Request-Id if it was 1..200 visible ASCII characters, "
    "else a new one; sent upstream as x-request-id and in every log line.",
    "schema": {"type": "string"},
}


class _Schemas:
    """Collects one component schema per message reached from the routes."""

    def __init__(self) -> None:
        self.components: dict[str, Any] = {"Error": _ERROR}

    def message(self, msg: descriptor.Descriptor) -> dict[str, Any]:
        name = msg.full_name
        if name in _WELL_KNOWN:
            return dict(_WELL_KNOWN[name])
        if name in _WRAPPERS:
            return dict(_SCALARS[_WRAPPERS[name]])
        if name not in self.components:
            self.components[name] = {}  # placeholder first: recursive messages refer to it
            self.components[name] = self._object(msg)
        return {"$ref": _REF + name}

    def _object(self, msg: descriptor.Descriptor) -> dict[str, Any]:
        schema: dict[str, Any] = {
            "type": "object",
            "properties": {f.json_name: self.field(f) for f in msg.fields},
            "additionalProperties": False,
        }
        exclusive = [
            {"not": {"required": [a.json_name, b.json_name]}}
            for oneof in msg.oneofs
            if len(oneof.fields) > 1
            for i, a in enumerate(oneof.fields)
            for b in oneof.fields[i + 1 :]
        ]
        if exclusive:
            schema["allOf"] = exclusive
        return schema

    def field(self, f: descriptor.FieldDescriptor) -> dict[str, Any]:
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key, value = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            out: dict[str, Any] = {"type": "object", "additionalProperties": self.single(value)}
            if key.type != FD.TYPE_STRING:
                out["propertyNames"] = {"pattern": r"^(true|false|-?[0-9]{1,18})$"}
            return out
        if f.is_repeated:
            return {"type": "array", "items": self.single(f)}
        return self.single(f)

    def single(self, f: descriptor.FieldDescriptor) -> dict[str, Any]:
        if f.type == FD.TYPE_MESSAGE:
            return self.message(f.message_type)
        if f.type == FD.TYPE_ENUM:
            names: list[Any] = [v.name for v in f.enum_type.values]
            return {"enum": names + [v.number for v in f.enum_type.values]}
        return dict(_SCALARS[f.type])


def _field_at(msg: descriptor.Descriptor, dotted: str) -> descriptor.FieldDescriptor | None:
    field = None
    for part in dotted.split("."):
        if msg is None or part not in msg.fields_by_name:
            return None
        field = msg.fields_by_name[part]
        msg = field.message_type
    return field


def _parameters(route: Route, schemas: _Schemas) -> list[dict[str, Any]]:
    msg = route.input_type.DESCRIPTOR
    params: list[dict[str, Any]] = []
    for name in route.template.fields:
        field = _field_at(msg, name)
        schema = schemas.single(field) if field is not None else {"type": "string"}
        if schema.get("type") == "string" or "$ref" in schema or "type" not in schema:
            schema = {"type": "string", "minLength": 1}
        params.append({"name": name, "in": "path", "required": True, "schema": schema})
    if not route.body:  # query parameters: the top-level scalar fields the path does not bind
        bound = {n.split(".")[0] for n in route.template.fields}
        for f in msg.fields:
            if f.name in bound or f.type == FD.TYPE_MESSAGE:
                continue
            params.append({"name": f.json_name, "in": "query", "required": False, "schema": schemas.field(f)})
    params.append({"$ref": "#/components/parameters/RequestId"})
    return params


def _status(code: str) -> str:
    return str(next(s for c, s in HTTP_STATUS.items() if c.name == code))


def _operation(route: Route, config: GatewayConfig, schemas: _Schemas) -> dict[str, Any]:
    msg = route.input_type.DESCRIPTOR
    out_schema = (
        schemas.field(route.output_type.DESCRIPTOR.fields_by_name[route.response_body])
        if route.response_body
        else schemas.message(route.output_type.DESCRIPTOR)
    )
    content: dict[str, Any] = {"application/json": {"schema": out_schema}}
    if route.server_streaming:
        content = {
            "application/json": {"schema": {"type": "array", "items": out_schema}},
            "application/x-ndjson": {
                "schema": {"type": "string", "description": "one JSON message per line"}
            },
        }
    ok_headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    if route.verb == "GET" and route.no_side_effects:
        ok_headers["X-Cache"] = {"$ref": "#/components/headers/X-Cache"}
    responses: dict[str, Any] = {
        "200": {
            "description": f"{route.output_type.DESCRIPTOR.name}",
            "headers": ok_headers,
            "content": content,
        }
    }
    for code in ("INVALID_ARGUMENT", "NOT_FOUND", "ABORTED", "RESOURCE_EXHAUSTED", "UNAVAILABLE"):
        responses[_status(code)] = {"$ref": f"#/components/responses/{code}"}
    responses["default"] = {"$ref": "#/components/responses/Error"}
    op: dict[str, Any] = {
        "summary": f"{route.service}/{route.method}",
        "tags": [route.service],
        "parameters": _parameters(route, schemas),
        "responses": responses,
    }
    if route.body:
        body_schema = (
            schemas.message(msg) if route.body == "*" else schemas.field(msg.fields_by_name[route.body])
        )
        op["requestBody"] = {"required": False, "content": {"application/json": {"schema": body_schema}}}
    if config.auth is not None:
        policy = config.policy(route.name)
        op["security"] = [] if policy.public else [{"bearerAuth": list(policy.scopes)}]
        responses["401"] = {"$ref": "#/components/responses/UNAUTHENTICATED"}
        responses["403"] = {"$ref": "#/components/responses/PERMISSION_DENIED"}
    return op


def _path(route: Route) -> str:
    """The template as an OpenAPI path: ``{name=segments}`` becomes ``{name}``."""
    out, depth, skipping = "", 0, False
    for ch in route.template.template:
        if ch == "{":
            depth, skipping = depth + 1, False
        elif ch == "}":
            depth, skipping = depth - 1, False
        elif ch == "=" and depth:
            skipping = True
            continue
        if not skipping:
            out += ch
    return out


def _version() -> str:
    try:
        return version("grpcmesh")
    except PackageNotFoundError:  # pragma: no cover
        return "0"


def _components(schemas: _Schemas) -> dict[str, Any]:
    error = {"application/json": {"schema": {"$ref": _REF + "Error"}}}
    headers = {"X-Request-Id": {"$ref": "#/components/headers/X-Request-Id"}}
    responses = {
        code: {"description": code, "headers": headers, "content": error}
        for code in (
            "INVALID_ARGUMENT",
            "UNAUTHENTICATED",
            "PERMISSION_DENIED",
            "NOT_FOUND",
            "ABORTED",
            "RESOURCE_EXHAUSTED",
            "UNAVAILABLE",
        )
    }
    responses["RESOURCE_EXHAUSTED"]["headers"] = {
        **headers,
        "Retry-After": {"description": "seconds until a token is available", "schema": {"type": "integer"}},
    }
    responses["Error"] = {
        "description": "any other failure (see the code mapping)",
        "headers": headers,
        "content": error,
    }
    return {
        "schemas": schemas.components,
        "responses": responses,
        "parameters": {
            "RequestId": {"name": "X-Request-Id", "in": "header", "required": False, **_REQUEST_ID}
        },
        "headers": {
            "X-Request-Id": _REQUEST_ID,
            "X-Cache": {"description": "HIT, MISS or BYPASS", "schema": {"type": "string"}},
        },
        "securitySchemes": {
            "bearerAuth": {
                "type": "http",
                "scheme": "bearer",
                "bearerFormat": "JWT",
                "description": "HS256 or RS256 JWT; exp/nbf/aud/iss checked; scopes from the 'scope' claim.",
            }
        },
    }


def openapi_document(config: GatewayConfig, routes: Iterable[Route]) -> dict[str, Any]:
    """The OpenAPI 3.1 document for ``routes`` as served with ``config``."""
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    used: set[str] = set()
    for route in routes:
        item = paths.setdefault(_path(route), {})
        verb = route.verb.lower()
        if verb in item:  # two bindings on one path and verb: the router serves the first
            continue
        item[verb] = op = _operation(route, config, schemas)
        op["operationId"] = route.name if route.name not in used else f"{route.name}_{len(used)}"
        used.add(op["operationId"])
    mapping = ", ".join(f"{c.name} {s}" for c, s in HTTP_STATUS.items() if c.name != "OK")
    doc: dict[str, Any] = {
        "openapi": "3.1.0",
        "info": {
            "title": "grpcmesh API gateway",
            "version": _version(),
            "description": "HTTP/JSON transcoding of the mesh's gRPC methods (google.api.http). "
            "Bodies and answers use the proto3 JSON mapping. A grpc-timeout header (500m, 2S) sets the "
            f"call's deadline. gRPC status to HTTP status: {mapping}.",
        },
        "paths": paths,
        "components": _components(schemas),
    }
    return doc

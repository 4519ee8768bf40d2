"""HTTP request → request message, response message → JSON (proto3 JSON mapping).

Path variables, the body and query parameters are merged into one dict and parsed
once with ``json_format.ParseDict(..., ignore_unknown_fields=False)``, so a typo
anywhere is a 400 that names the field instead of being silently dropped. Path
variables win over the body (as in grpc-gateway); query parameters are only read
for fields the path and body do not cover.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from typing import Any

from google.protobuf import json_format
from google.protobuf.message import Message

from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.routes import Route

__all__ = ["build_request", "parse_body", "to_json"]

_UNKNOWN = re.compile(r'has no field named "([^"]+)" at "([^"]*)"')
_AT = re.compile(r' at "([^"]*)"')
_FAILED = re.compile(r"Failed to parse (\S+) field")


def parse_body(raw: bytes) -> Any:
    """The JSON body, or a 400 saying where it is malformed."""
    if not raw.strip():
        return {}
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise GatewayError.bad_request("body", "request body is not UTF-8") from None
    except json.JSONDecodeError as err:
        raise GatewayError.bad_request(
            "body", f"malformed JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None


def _put(target: dict[str, Any], dotted: str, value: Any, *, overwrite: bool) -> None:
    keys = dotted.split(".")
    for key in keys[:-1]:
        child = target.setdefault(key, {})
        if not isinstance(child, dict):
            raise GatewayError.bad_request(dotted, f"{key!r} is not a message field")
        target = child
    if overwrite or keys[-1] not in target:
        target[keys[-1]] = value


def _field_path(message: str, root: str) -> str:
    """``AppendRequest.events[0].data`` → ``events[0].data`` (the name a client used)."""
    at = _AT.search(message)
    path = at.group(1) if at else root
    prefix = path.split(".", 1)[1] + "." if "." in path else ""
    unknown = _UNKNOWN.search(message)
    if unknown:
        return prefix + unknown.group(1)
    failed = _FAILED.findall(message)  # nested: "Failed to parse a field: Failed to parse b field: …"
    if failed:
        return prefix + ".".join(failed)
    return prefix.rstrip(".") or "body"


def _describe(message: str) -> str:
    unknown = _UNKNOWN.search(message)
    if unknown:
        return f'unknown field "{unknown.group(1)}"'
    return _AT.split(message, maxsplit=1)[0].strip().rstrip(".")


def build_request(
    route: Route, bound: Mapping[str, str], body: Any, query: Iterable[tuple[str, str]]
) -> Message:
    """The request message for ``route``; any bad field is a 400 whose detail names it."""
    data: dict[str, Any]
    if route.body == "*":
        if not isinstance(body, dict):
            raise GatewayError.bad_request("body", "request body must be a JSON object")
        data = dict(body)
    elif route.body:
        data = {route.body: body} if body != {} else {}
    else:
        data = {}
    if route.body != "*":
        values: dict[str, list[str]] = {}
        for key, value in query:
            values.setdefault(key, []).append(value)
        for key, vals in values.items():
            _put(data, key, vals if len(vals) > 1 else vals[0], overwrite=False)
    for name, value in bound.items():
        _put(data, name, value, overwrite=True)
    message: Message = route.input_type()
    try:
        json_format.ParseDict(data, message, ignore_unknown_fields=False)
    except json_format.ParseError as err:
        root = message.DESCRIPTOR.name
        raise GatewayError.bad_request(_field_path(str(err), root), _describe(str(err))) from None
    except (AttributeError, TypeError, ValueError) as err:  # json_format trips over e.g. {"@type": {}}
        raise GatewayError.bad_request("body", f"a value has the wrong JSON type ({err})") from None
    return message


def to_json(message: Message) -> dict[str, Any]:
    """Proto3 JSON (lowerCamelCase names, 64-bit integers as strings, zero values included)."""
    result: dict[str, Any] = json_format.MessageToDict(message, always_print_fields_with_no_presence=True)
    return result

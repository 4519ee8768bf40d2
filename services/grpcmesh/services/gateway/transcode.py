"""HTTP request → request message, response message → JSON (proto3 JSON mapping).

Path variables, the body and query parameters are merged into one dict and parsed
once with ``json_format.ParseDict(..., ignore_unknown_fields=False)``, so a typo
anywhere is a 400 that names the field instead of being silently dropped. Path
variables win over the body (as in grpc-gateway); query parameters are only read
for fields the path and body do not cover.

Stricter than the libraries underneath, where they are lenient in ways a hostile
client can use: a body nested deeper than a limit is a 400 before it is parsed
(json and json_format recurse; 100,000 levels was a RecursionError and a 500),
``bytes`` fields must be valid base64 (``"!!!"`` decoded to empty bytes), and a
query string with invalid percent-encoding or non-UTF-8 bytes is a 400 (decoding
it to U+FFFD would let different raw values alias one).
"""

from __future__ import annotations

import base64
import binascii
import json
import re
from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import parse_qsl

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from grpcmesh.services.gateway.errors import GatewayError
from grpcmesh.services.gateway.routes import Route

__all__ = ["build_request", "parse_body", "strict_query", "to_json"]

_UNKNOWN = re.compile(r'has no field named "([^"]+)" at "([^"]*)"')
_AT = re.compile(r' at "([^"]*)"')
_FAILED = re.compile(r"Failed to parse (\S+) field")


_TOKEN = re.compile(rb'"(?:[^"\\]|\\.)*"|[\[\]{}]')
_BAD_PERCENT = re.compile(r"%(?![0-9A-Fa-f]{2})")
_BASE64 = re.compile(r"[A-Za-z0-9+/_-]*={0,2}")


def _check_depth(raw: bytes, max_depth: int) -> None:
    """A 400 naming the top-level field whose value nests deeper than ``max_depth``."""
    if raw.count(b"[") + raw.count(b"{") <= max_depth:
        return  # cannot be deeper: the common case costs two counts
    depth, key = 0, ""
    for token in _TOKEN.finditer(raw):
        text = token.group()
        if text in (b"[", b"{"):
            depth += 1
            if depth > max_depth:
                raise GatewayError.bad_request(
                    key or "body", f"JSON is nested deeper than {max_depth} levels"
                )
        elif text in (b"]", b"}"):
            depth -= 1
        elif depth == 1:
            key = text[1:-1].decode("utf-8", "replace")


def parse_body(raw: bytes, max_depth: int = 64) -> Any:
    """The JSON body, or a 400 saying where it is malformed."""
    if not raw.strip():
        return {}
    _check_depth(raw, max_depth)
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


def strict_query(raw: str) -> list[tuple[str, str]]:
    """The query string's pairs, or a 400 naming the parameter that is not valid percent-encoded UTF-8."""
    pairs: list[tuple[str, str]] = []
    for part in raw.split("&") if raw else ():
        name = part.partition("=")[0]
        try:
            if _BAD_PERCENT.search(part):
                raise UnicodeDecodeError("utf-8", b"", 0, 1, "invalid percent-encoding")
            pairs += parse_qsl(part, keep_blank_values=True, errors="strict")
        except UnicodeDecodeError:
            field = name if name.isprintable() and not _BAD_PERCENT.search(name) else "query"
            raise GatewayError.bad_request(field, "invalid percent-encoding or not UTF-8") from None
    return pairs


def _field(descriptor: Descriptor, key: str) -> FieldDescriptor | None:
    found: FieldDescriptor | None = descriptor.fields_by_name.get(key)
    return found or next((f for f in descriptor.fields if f.json_name == key), None)


def _check_bytes(descriptor: Descriptor, data: Any, path: str = "") -> None:
    """A 400 naming the first ``bytes`` field whose value is not base64 (json_format is lenient)."""
    if not isinstance(data, dict):
        return
    for key, value in data.items():
        field = _field(descriptor, key)
        if field is None:
            continue  # ParseDict names unknown fields
        where = f"{path}{key}"
        items = list(enumerate(value)) if field.is_repeated and isinstance(value, list) else [(None, value)]
        for i, item in items:
            at = where if i is None else f"{where}[{i}]"
            if field.type == FieldDescriptor.TYPE_BYTES and isinstance(item, str):
                _check_base64(item, at)
            elif field.type == FieldDescriptor.TYPE_MESSAGE and not field.message_type.GetOptions().map_entry:
                _check_bytes(field.message_type, item, f"{at}.")


def _check_base64(value: str, field: str) -> None:
    if _BASE64.fullmatch(value) and len(value.rstrip("=")) % 4 != 1:
        try:
            padded = value.rstrip("=") + "=" * (-len(value.rstrip("=")) % 4)
            base64.b64decode(padded.replace("-", "+").replace("_", "/"), validate=True)
            return
        except binascii.Error:
            pass
    raise GatewayError.bad_request(field, "must be base64 (standard or URL-safe alphabet)")


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
    _check_bytes(message.DESCRIPTOR, data)
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

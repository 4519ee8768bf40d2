"""Hostile requests built from a method's descriptor: garbage bytes, empty messages, maximum
numbers, 1 MB strings, invalid UTF-8. Every probe is raw bytes, so it reaches the server as a
hostile client would send it (no client-side serializer to refuse it first)."""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Iterator
from dataclasses import dataclass

from google.protobuf import message_factory
from google.protobuf.descriptor import Descriptor, FieldDescriptor, MethodDescriptor
from google.protobuf.message import Message

__all__ = ["Probe", "contract_methods", "probes"]

F = FieldDescriptor
_MAX = {
    F.TYPE_UINT64: 2**64 - 1,
    F.TYPE_FIXED64: 2**64 - 1,
    F.TYPE_INT64: 2**63 - 1,
    F.TYPE_SINT64: -(2**63),
    F.TYPE_SFIXED64: 2**63 - 1,
    F.TYPE_UINT32: 2**32 - 1,
    F.TYPE_FIXED32: 2**32 - 1,
    F.TYPE_INT32: -(2**31),
    F.TYPE_SINT32: 2**31 - 1,
    F.TYPE_SFIXED32: -(2**31),
    F.TYPE_DOUBLE: float("inf"),
    F.TYPE_FLOAT: float("-inf"),
    F.TYPE_BOOL: True,
    F.TYPE_ENUM: 2**31 - 1,  # proto3 enums are open: an unknown number decodes
}
MB = 1024 * 1024


@dataclass(frozen=True)
class Probe:
    name: str
    body: bytes


def contract_methods(package: str = "grpcmesh.api.v1") -> Iterator[MethodDescriptor]:
    """Every method of every service in every ``*_pb2`` module of ``package``."""
    root = importlib.import_module(package)
    for info in pkgutil.iter_modules(root.__path__):
        if info.name.endswith("_pb2"):
            module = importlib.import_module(f"{package}.{info.name}")
            for service in module.DESCRIPTOR.services_by_name.values():
                yield from service.methods


def _fill(message: Message, text: str, blob: bytes, depth: int, wide: int = 2**64 - 1) -> None:
    """Sets every field: numbers to extremes (unsigned 64-bit ones to ``wide``), strings/bytes to
    ``text``/``blob``, down ``depth`` levels."""
    for field in message.DESCRIPTOR.fields:
        repeated = field.is_repeated
        if field.type == F.TYPE_MESSAGE:
            if depth <= 0 or field.message_type.GetOptions().map_entry:
                continue
            target = getattr(message, field.name)
            child = target.add() if repeated else target
            _fill(child, text, blob, depth - 1, wide)
            if not repeated:
                child.SetInParent()
            continue
        if field.type == F.TYPE_STRING:
            value: object = text
        elif field.type == F.TYPE_BYTES:
            value = blob
        elif field.type in (F.TYPE_UINT64, F.TYPE_FIXED64):
            value = wide
        else:
            value = _MAX[field.type]
        if repeated:
            getattr(message, field.name).append(value)
        else:
            setattr(message, field.name, value)


def _new(descriptor: Descriptor) -> Message:
    return message_factory.GetMessageClass(descriptor)()


def _first_string(descriptor: Descriptor) -> FieldDescriptor | None:
    return next((f for f in descriptor.fields if f.type == F.TYPE_STRING), None)


def probes(method: MethodDescriptor) -> list[Probe]:
    """The hostile requests for one method."""
    descriptor = method.input_type
    maxed = _new(descriptor)
    _fill(maxed, "x", b"x", depth=2)
    signed_max = _new(descriptor)  # passes the range check at the edge: reaches the handlers
    _fill(signed_max, "x", b"x", depth=2, wide=2**63 - 1)
    huge = _new(descriptor)
    _fill(huge, "y" * MB, b"", depth=1)
    out = [
        Probe("garbage", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01"),
        Probe("truncated", b"\x0a\x7f" + b"z" * 10),
        Probe("wrong-wire-type", b"\x0d\x00"),
        Probe("empty", b""),
        Probe("max-numbers", maxed.SerializeToString()),
        Probe("int64-max-numbers", signed_max.SerializeToString()),
        Probe("1mb-strings", huge.SerializeToString()[: 12 * MB]),
    ]
    field = _first_string(descriptor)
    if field is not None:
        key = bytes([(field.number << 3) | 2]) if field.number < 16 else b""
        if key:
            out.append(Probe("invalid-utf8", key + b"\x04\xff\xfe\xc3\x28"))
    return out

"""How the engine makes a step's call: the :class:`StepCaller` port and its mesh adapter.

:class:`MeshStepCaller` sends the call through :class:`grpcmesh.sdk.AsyncMeshClient`
(the local sidecar in production, ``discovery=`` in direct mode) as raw bytes: a
protobuf request is serialised as-is, a dict as JSON. Every call carries
``x-idempotency-key`` so a participant can drop a re-issued call after a crash.
Failures surface as the SDK's typed :class:`~grpcmesh.sdk.errors.MeshError`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from google.protobuf.json_format import MessageToDict
from google.protobuf.message import Message

from grpcmesh.sdk.client import AsyncMeshClient
from grpcmesh.services.saga.definitions import Call

__all__ = ["IDEMPOTENCY_KEY", "MeshStepCaller", "StepCaller", "decode_result", "encode_request"]

IDEMPOTENCY_KEY = "x-idempotency-key"


class StepCaller(Protocol):
    async def __call__(self, call: Call, request: Any, idempotency_key: str) -> dict[str, Any]:
        """Makes one attempt of ``call``; returns the step result or raises MeshError."""
        ...


def encode_request(request: Any) -> bytes:
    if isinstance(request, Message):
        return request.SerializeToString()
    if isinstance(request, Mapping):
        return json.dumps(request, separators=(",", ":")).encode()
    kind = type(request).__name__
    raise TypeError(f"a request builder must return a protobuf message or a dict, not {kind}")


def decode_result(call: Call, payload: bytes) -> dict[str, Any]:
    response: Any
    if call.response is not None:
        response = call.response.FromString(payload)
    else:
        response = json.loads(payload) if payload else {}
    if call.result is not None:
        return call.result(response)
    if isinstance(response, Message):
        as_json = MessageToDict(response, preserving_proto_field_name=True)
        return as_json if isinstance(as_json, dict) else {"value": as_json}  # well-known wrapper types
    if not isinstance(response, dict):
        raise TypeError(f"{call.method} answered {type(response).__name__}, not a JSON object")
    return response


def _identity(data: bytes) -> bytes:
    return data


class MeshStepCaller:
    """A :class:`StepCaller` over an :class:`AsyncMeshClient` (retries are the engine's, not the client's)."""

    def __init__(self, client: AsyncMeshClient) -> None:
        self._client = client

    async def __call__(self, call: Call, request: Any, idempotency_key: str) -> dict[str, Any]:
        method = self._client.channel(call.service).unary_unary(
            call.method, request_serializer=_identity, response_deserializer=_identity
        )
        payload = await method(
            encode_request(request), timeout=call.timeout, metadata=((IDEMPOTENCY_KEY, idempotency_key),)
        )
        return decode_result(call, payload)

"""A method's ``retryPolicy`` from a gRPC service config (gRFC A6), as the mesh applies it.

The JSON is the one grpc clients accept (``{"methodConfig": [{"name": [...],
"retryPolicy": {...}}]}``); it is parsed and validated once, at config time,
into :class:`MethodRetry` rules looked up by method path: an exact
``service``+``method`` entry first, then the ``service`` entry, then the
config-wide default (``"name": [{}]``). Invalid fields raise ``ValueError``
naming the field, as grpc's own validation would reject them.
"""

from __future__ import annotations

import json
import random
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import grpc

__all__ = ["MethodRetry", "parse_service_config"]

_MAX_ATTEMPTS_CAP = 5  # gRFC A6: larger values are treated as 5


@dataclass(frozen=True, slots=True)
class MethodRetry:
    """Retry rules of one method; ``explicit``: a service config named it (idempotency not required)."""

    max_attempts: int
    initial_backoff_s: float
    max_backoff_s: float
    multiplier: float
    codes: frozenset[grpc.StatusCode]
    explicit: bool = False

    def backoff(self, retries: int) -> float:
        """Full-jitter exponential backoff before retry number ``retries`` (1-based, gRFC A6)."""
        high = min(self.max_backoff_s, self.initial_backoff_s * self.multiplier ** (retries - 1))
        return random.uniform(0.0, max(high, 0.0))


def _duration(value: Any, key: str) -> float:
    if not isinstance(value, str) or not value.endswith("s"):
        raise ValueError(f"{key}: expected a duration like '0.1s', got {value!r}")
    try:
        seconds = float(value[:-1])
    except ValueError:
        raise ValueError(f"{key}: expected a duration like '0.1s', got {value!r}") from None
    if seconds <= 0:
        raise ValueError(f"{key}: must be > 0")
    return seconds


def _codes(value: Any, key: str) -> frozenset[grpc.StatusCode]:
    if not isinstance(value, list) or not value:
        raise ValueError(f"{key}: expected a non-empty list of status codes")
    by_number = {c.value[0]: c for c in grpc.StatusCode}
    out: set[grpc.StatusCode] = set()
    for item in value:
        code = by_number.get(item) if isinstance(item, int) else grpc.StatusCode.__members__.get(str(item))
        if code is None or code is grpc.StatusCode.OK:
            raise ValueError(f"{key}: unknown status code {item!r}")
        out.add(code)
    return frozenset(out)


def _policy(raw: Mapping[str, Any], key: str) -> MethodRetry:
    attempts = raw.get("maxAttempts")
    if not isinstance(attempts, int) or isinstance(attempts, bool) or attempts < 2:
        raise ValueError(f"{key}.maxAttempts: must be an integer >= 2")
    multiplier = raw.get("backoffMultiplier")
    if not isinstance(multiplier, int | float) or isinstance(multiplier, bool) or multiplier <= 0:
        raise ValueError(f"{key}.backoffMultiplier: must be a number > 0")
    return MethodRetry(
        max_attempts=min(attempts, _MAX_ATTEMPTS_CAP),
        initial_backoff_s=_duration(raw.get("initialBackoff"), f"{key}.initialBackoff"),
        max_backoff_s=_duration(raw.get("maxBackoff"), f"{key}.maxBackoff"),
        multiplier=float(multiplier),
        codes=_codes(raw.get("retryableStatusCodes"), f"{key}.retryableStatusCodes"),
        explicit=True,
    )


def parse_service_config(text: str) -> dict[str, MethodRetry]:
    """``/svc/method``, ``/svc/`` or ``""`` (default) → the retry rules a service config gives."""
    if not text.strip():
        return {}
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(f"service_config: not valid JSON: {err}") from None
    entries = doc.get("methodConfig", []) if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise ValueError("service_config.methodConfig: expected a list")
    table: dict[str, MethodRetry] = {}
    for i, entry in enumerate(entries):
        key = f"service_config.methodConfig[{i}]"
        raw = entry.get("retryPolicy") if isinstance(entry, dict) else None
        if raw is None:
            continue
        if not isinstance(raw, dict):
            raise ValueError(f"{key}.retryPolicy: expected an object")
        policy = _policy(raw, f"{key}.retryPolicy")
        for name in entry.get("name", [{}]):
            service, method = str(name.get("service", "")), str(name.get("method", ""))
            if method and not service:
                raise ValueError(f"{key}.name: a method needs its service")
            table[f"/{service}/{method}" if service else ""] = policy
    return table

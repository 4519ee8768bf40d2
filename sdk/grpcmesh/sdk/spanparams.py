"""Trace search parameters as users type them (URL query, CLI flags) into a :class:`TraceQuery`.

One parser for the page, ``/traces.json`` and ``grpcmesh traces``, so the three
accept the same values and name the same field when one is wrong.
"""

from __future__ import annotations

import datetime as dt
import re
import time
from collections.abc import Iterable, Mapping
from typing import Any

from grpcmesh.sdk.spansearch import TraceQuery

__all__ = ["parse_time", "query_from_params"]

_AGO = re.compile(r"^(\d+(?:\.\d+)?)(ms|s|m|h|d)$")
_UNIT_S = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def parse_time(name: str, text: str, now_ns: int | None = None) -> int:
    """``15m`` (that long ago) or an ISO 8601 time (UTC unless it says) as Unix nanoseconds."""
    text = text.strip()
    now = time.time_ns() if now_ns is None else now_ns
    ago = _AGO.match(text)
    if ago:
        return now - int(float(ago.group(1)) * _UNIT_S[ago.group(2)] * 1e9)
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise ValueError(
            f"{name}: expected a duration ago (30s, 15m, 2h, 1d) or an ISO time, got {text!r}"
        ) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return int(when.timestamp() * 1e9)


def _number(name: str, value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name}: expected a number, got {value!r}") from None


def query_from_params(params: Mapping[str, Any], attributes: Iterable[str] = ()) -> TraceQuery:
    """A query from URL/CLI parameters (strings); a bad one raises ValueError naming the field.

    Keys: service, method, errors, min_ms, max_ms, since, until, request_id, sort, limit;
    ``attributes`` are ``key=value`` strings.
    """
    pairs = []
    for item in attributes:
        if not item.strip():  # an empty form field
            continue
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise ValueError(f"attr: expected key=value, got {item!r}")
        pairs.append((key.strip(), value))
    limit = _number("limit", params.get("limit"))
    since, until = params.get("since"), params.get("until")
    return TraceQuery(
        service=params.get("service") or None,
        method=params.get("method") or None,
        errors_only=str(params.get("errors") or "") in ("1", "true", "on", "yes"),
        min_duration_ms=_number("min_ms", params.get("min_ms")),
        max_duration_ms=_number("max_ms", params.get("max_ms")),
        start_ns=parse_time("since", since) if since else None,
        end_ns=parse_time("until", until) if until else None,
        request_id=params.get("request_id") or None,
        attributes=tuple(pairs),
        sort=params.get("sort") or "newest",
        limit=int(limit) if limit is not None else 20,
    )

"""Response cache for GETs of side-effect-free methods: in-process, TTL + LRU.

The key is verb + path + sorted query + the caller's subject, so one user never
sees another's answer and ``?a=1&b=2`` equals ``?b=2&a=1``. Only successful
answers are stored; a request's ``Cache-Control: no-cache`` skips the lookup (the
fresh answer is stored), ``no-store`` skips both.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["CachedResponse", "ResponseCache", "cache_directives", "cache_key"]


@dataclass(frozen=True)
class CachedResponse:
    status: int
    content_type: str
    body: bytes


def cache_key(verb: str, path: str, query: Iterable[tuple[str, str]], subject: str | None) -> str:
    """A canonical key: query pairs sorted and re-encoded, subject last ('-' when anonymous)."""
    pairs = sorted((quote(k, safe=""), quote(v, safe="")) for k, v in query)
    canonical = "&".join(f"{k}={v}" for k, v in pairs)
    return f"{verb} {path}?{canonical} sub={quote(subject, safe='') if subject else '-'}"


def cache_directives(header: str | None) -> frozenset[str]:
    """Lower-case directive names of a ``Cache-Control`` header."""
    if not header:
        return frozenset()
    return frozenset(d.split("=", 1)[0].strip().lower() for d in header.split(",") if d.strip())


class ResponseCache:
    """At most ``max_entries`` answers, each fresh for its own TTL."""

    def __init__(self, max_entries: int = 1024, clock: Callable[[], float] = time.monotonic) -> None:
        if max_entries < 1:
            raise ValueError(f"cache max_entries must be >= 1, got {max_entries}")
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[str, tuple[float, CachedResponse]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> CachedResponse | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        expires, response = entry
        if self._clock() >= expires:
            del self._entries[key]
            return None
        self._entries.move_to_end(key)
        return response

    def put(self, key: str, response: CachedResponse, ttl: float) -> None:
        if ttl <= 0:
            return
        self._entries[key] = (self._clock() + ttl, response)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

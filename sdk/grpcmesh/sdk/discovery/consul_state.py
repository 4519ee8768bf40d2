"""Pure pieces of the Consul resolver: answer parsing, the change digest, backoff.

The change feed is one blocking query on ``/v1/health/state/any``: every check
in the datacenter with its node, service and status. A service's *digest*
summarises what in that answer decides its passing instances (its checks'
statuses and tags, and the node-level checks of the nodes it runs on); a
watched service is re-read only when its digest differs from the previous
answer's, so one held query tells which of thousands of services changed.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from grpcmesh.sdk.discovery.base import Endpoint

__all__ = ["ConsulStats", "backoff_delay", "changed_services", "digests", "endpoints_from_health"]


@dataclass
class ConsulStats:
    """Counters of one resolver (mutable on purpose: its tasks update them)."""

    http_requests: int = 0
    errors: int = 0
    changes: int = 0
    feed_answers: int = 0
    feed_checks: int = 0
    """Checks in the last feed answer: how big the feed is."""
    reads: int = 0


def backoff_delay(
    attempt: int, *, base: float = 0.1, cap: float = 5.0, rng: Callable[[], float] = random.random
) -> float:
    """Exponential backoff with "equal jitter": half fixed, half random, never above ``cap``.

    The fixed half keeps a flapping registry from being hammered in a tight
    loop; the random half spreads the retries of many sidecars apart.
    """
    ceiling = min(cap, base * 2.0 ** max(0, attempt - 1))
    return ceiling / 2 + rng() * ceiling / 2


def endpoints_from_health(entries: list[dict[str, Any]] | None) -> tuple[Endpoint, ...]:
    """Endpoints from a ``/v1/health/service`` answer, sorted by service id."""
    endpoints = []
    for entry in entries or ():
        svc = entry.get("Service") or {}
        node = entry.get("Node") or {}
        weights = svc.get("Weights") or {}
        endpoints.append(
            Endpoint(
                address=svc.get("Address") or node.get("Address") or "",
                port=int(svc.get("Port") or 0),
                tags=tuple(svc.get("Tags") or ()),
                meta=MappingProxyType(dict(svc.get("Meta") or {})),
                weight=int(weights.get("Passing", 1)),
                id=str(svc.get("ID") or ""),
            )
        )
    return tuple(sorted(endpoints, key=lambda ep: (ep.id, ep.address, ep.port)))


def digests(checks: Iterable[Mapping[str, Any]] | None) -> dict[str, int]:
    """``{service: digest}`` for every service in a ``/v1/health/state/any`` answer.

    Every service, not only the watched ones: a service first watched between
    two answers is then compared with the previous answer too, which covers
    any change after its first read without re-reading it just in case.

    A digest is a hash (stable within one process) of the sorted
    ``(node, check id, service id, status, service tags)`` of the service's
    checks plus the failing node checks of its nodes: a node going critical takes
    every instance on it out of the passing set, so it changes their digests.
    Check output and ``ModifyIndex`` are left out on purpose: Consul rewrites
    them without the passing set changing (output sync every few minutes).
    """
    node_checks: dict[str, list[tuple[str, str]]] = {}
    by_service: dict[str, list[tuple[str, str, str, str, tuple[str, ...]]]] = {}
    for check in checks or ():
        node = str(check.get("Node") or "")
        service = check.get("ServiceName") or ""
        status = str(check.get("Status") or "")
        if not service:
            if status != "passing":  # only failing node checks count, whether the feed is filtered or not
                node_checks.setdefault(node, []).append((str(check.get("CheckID") or ""), status))
        else:
            tags = tuple(check.get("ServiceTags") or ())
            row = (node, str(check.get("CheckID") or ""), str(check.get("ServiceID") or ""), status, tags)
            by_service.setdefault(service, []).append(row)
    out: dict[str, int] = {}
    for service, rows in by_service.items():
        nodes = sorted({row[0] for row in rows})
        node_part = tuple((n, tuple(sorted(node_checks.get(n, ())))) for n in nodes)
        out[service] = hash((tuple(sorted(rows)), node_part))
    return out


def changed_services(old: Mapping[str, int], new: Mapping[str, int], watched: Iterable[str]) -> set[str]:
    """Watched services whose digest differs (appearing or vanishing counts as a change)."""
    return {s for s in watched if old.get(s) != new.get(s)}

"""Settings of the Consul resolver: one frozen value, built once at the edge.

Defaults are sized for a sidecar or gateway that talks to up to thousands of
services through the local agent (see ``deploy/consul/agent.hcl`` for the
agent side): four connections in all, whatever the number of services.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields

__all__ = ["ConsulSettings", "parse_duration"]


def parse_duration(text: str) -> float:
    """Seconds in a Consul-style duration: ``250ms``, ``30s``, ``5m``, ``1h`` or a bare number."""
    units = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
    for suffix in ("ms", "s", "m", "h"):
        if text.endswith(suffix):
            return float(text[: -len(suffix)]) * units[suffix]
    return float(text)


def _parse_bool(key: str, raw: str) -> bool:
    if raw.lower() in ("1", "true", "yes", "on"):
        return True
    if raw.lower() in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"consul URL parameter {key!r}: {raw!r} is not a boolean (true/false)")


def _convert(key: str, raw: str, kind: str) -> object:
    """``raw`` as the field's type (the annotation's text, as ``from __future__`` keeps it)."""
    if kind == "bool":
        return _parse_bool(key, raw)
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return parse_duration(raw)
    except ValueError:
        raise ValueError(f"consul URL parameter {key!r}: {raw!r} is not a number") from None
    return raw


@dataclass(frozen=True, slots=True)
class ConsulSettings:
    """How the resolver talks to its agent and how much it keeps.

    Connections to the agent never exceed ``max_reads + 1``: one held blocking
    query (the change feed) plus at most ``max_reads`` short reads.
    """

    datacenter: str | None = None
    tag: str | None = None
    wait: str = "30s"
    """Longest hold of the change feed's blocking query (Consul adds up to wait/16)."""
    token: str | None = None
    first_answer_timeout: float = 5.0
    """Bound on a first ``resolve`` of a service; past it the call sees a stale, empty answer."""
    backoff_cap: float = 5.0
    """Longest pause between retries while the agent is unreachable."""
    max_reads: int = 3
    """Concurrent targeted reads (``/v1/health/service/<name>``); each holds one connection briefly."""
    max_services: int = 10_000
    """Services kept watched; past it the least recently used is dropped."""
    idle_ttl: float = 600.0
    """Seconds a service with no watcher stays watched after its last ``resolve``."""
    resync_interval: float = 300.0
    """Every this many seconds each watched service is re-read at low priority (0: never).

    The change feed sees health-check changes only; this catches what it cannot:
    an instance re-registered in place with a new address or meta, or a service
    registered without any check.
    """
    read_timeout: float = 10.0
    """Bound on one targeted read."""
    feed_min_interval: float = 0.1
    """Least time between two change-feed queries: in a burst of changes (a deploy) each
    answer, which carries every check of the datacenter, then covers many changes."""
    feed_filter_max: int = 200
    """While at most this many services are watched, the feed names them in a server-side
    filter, so its answers are the size of what is watched, not of the datacenter (0: never)."""
    stale_feed: bool = True
    """Let any server answer the change feed (``?stale``) rather than only the leader."""

    def __post_init__(self) -> None:
        if self.feed_filter_max < 0:
            raise ValueError(f"consul setting feed_filter_max must be >= 0, got {self.feed_filter_max}")
        for name in ("max_reads", "max_services"):
            if getattr(self, name) < 1:
                raise ValueError(f"consul setting {name} must be >= 1, got {getattr(self, name)}")
        durations = ("first_answer_timeout", "backoff_cap", "idle_ttl", "resync_interval", "read_timeout")
        for name in (*durations, "feed_min_interval"):
            if getattr(self, name) < 0:
                raise ValueError(f"consul setting {name} must be >= 0, got {getattr(self, name)}")
        if parse_duration(self.wait) <= 0:
            raise ValueError(f"consul setting wait must be a positive duration, got {self.wait!r}")

    @property
    def max_connections(self) -> int:
        """The stated bound on connections from this resolver to the agent."""
        return self.max_reads + 1

    @property
    def wait_seconds(self) -> float:
        return parse_duration(self.wait)

    @classmethod
    def from_query(cls, query: Mapping[str, str]) -> ConsulSettings:
        """From URL query parameters (``?dc=…&tag=…&wait=…&max_reads=…``); unknown keys are errors."""
        aliases = {"dc": "datacenter", "resync": "resync_interval"}
        known = {f.name: f for f in fields(cls)}
        values: dict[str, object] = {}
        for key, raw in query.items():
            name = aliases.get(key, key)
            field = known.get(name)
            if field is None:
                names = ", ".join(sorted(known))
                raise ValueError(f"consul URL parameter {key!r} is unknown (known: {names})")
            values[name] = _convert(key, raw, str(field.type))
        return cls(**values)  # type: ignore[arg-type]

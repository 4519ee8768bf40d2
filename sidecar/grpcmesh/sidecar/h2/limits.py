"""What one HTTP/2 connection may cost the sidecar: the ``[h2]`` config table and flood budgets.

Every limit is per connection, so a peer over one is cut off alone (GOAWAY,
mostly ENHANCE_YOUR_CALM) while every other connection keeps being served.

Memory per connection is bounded by: the header block being received
(``max_header_list_bytes``, since an HPACK block is never larger than the list
it encodes), its decoded list (the same bound, checked while decoding, which
stops an HPACK "bomb" of repeated references to a large table entry), the
decoded header bytes of all its open streams (``max_header_bytes_per_connection``)
and the flow-control windows it is granted (1 MiB per stream, 16 MiB per
connection, see :mod:`connection`).

Floods of frames that cost the sidecar work but move no data (PING, SETTINGS,
streams the peer resets, empty DATA, PRIORITY, WINDOW_UPDATE) each draw on a
token bucket: ``burst`` frames at once, refilled at ``per_second``. A PING or
WINDOW_UPDATE that follows data the sidecar sent is free (that is how gRPC's
BDP probing and a reading peer behave), and a stream that completes normally
refunds a reset token, so only a peer that mostly cancels runs dry.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["Budget", "H2Limits"]


@dataclass(frozen=True)
class H2Limits:
    """The ``[h2]`` table of the sidecar config (defaults in the README)."""

    # SETTINGS_MAX_CONCURRENT_STREAMS we advertise and enforce with REFUSED_STREAM.
    max_concurrent_streams: int = 1000
    # SETTINGS_MAX_HEADER_LIST_SIZE: grpc-go's default (16 MiB), so the proxy is never the
    # tightest limit; also the bound on one (partially received) header block.
    max_header_list_bytes: int = 16 << 20
    # Decoded request header bytes of all open streams of one connection together.
    max_header_bytes_per_connection: int = 64 << 20
    # A connection with no open stream for this long gets GOAWAY(NO_ERROR) and is closed.
    idle_timeout_s: float = 300.0
    # A PING when nothing was received for this long; no ACK within keepalive_timeout_s: close.
    keepalive_s: float = 60.0
    keepalive_timeout_s: float = 20.0
    # Data waiting on a peer that opens no window (and reads nothing) for this long: close.
    stall_timeout_s: float = 60.0
    # Dialling side: an upstream silent for probe_after_s while calls are open gets a PING; no ACK
    # within probe_timeout_s and the connection is presumed dead (a pulled cable, a frozen host):
    # aborted, so its calls fail over now instead of waiting out their deadlines. At most one probe
    # per probe_min_interval_s per connection, so gRPC servers' ping policing (5 min) never strikes.
    probe_after_s: float = 1.0
    probe_timeout_s: float = 3.0
    probe_min_interval_s: float = 300.0
    # Flood budgets (burst, then per second): see the module docstring.
    ping_burst: int = 100
    settings_burst: int = 100
    reset_burst: int = 500
    idle_frame_burst: int = 1000
    refill_per_s: float = 10.0

    def __post_init__(self) -> None:
        if not 1 <= self.max_concurrent_streams <= 0x7FFFFFFF:
            raise ValueError("max_concurrent_streams: must be within [1, 2^31-1]")
        if self.max_header_list_bytes < 8192:
            raise ValueError("max_header_list_bytes: must be >= 8192")
        if self.max_header_bytes_per_connection < self.max_header_list_bytes:
            raise ValueError("max_header_bytes_per_connection: must be >= max_header_list_bytes")
        for key in (
            "idle_timeout_s",
            "keepalive_s",
            "keepalive_timeout_s",
            "stall_timeout_s",
            "probe_after_s",
            "probe_timeout_s",
        ):
            if getattr(self, key) <= 0:
                raise ValueError(f"{key}: must be > 0")
        for key in ("ping_burst", "settings_burst", "reset_burst", "idle_frame_burst"):
            if getattr(self, key) < 1:
                raise ValueError(f"{key}: must be >= 1")
        if self.refill_per_s < 0:
            raise ValueError("refill_per_s: must be >= 0")


class Budget:
    """A token bucket counted in frames: :meth:`take` is False once the peer overdraws it."""

    __slots__ = ("_at", "_burst", "_rate", "_tokens")

    def __init__(self, burst: int, per_second: float, now: float) -> None:
        self._burst = float(burst)
        self._rate = per_second
        self._tokens = float(burst)
        self._at = now

    def take(self, now: float) -> bool:
        tokens = self._tokens + (now - self._at) * self._rate
        self._at = now
        self._tokens = min(tokens, self._burst) - 1.0
        return self._tokens >= 0.0

    def refund(self) -> None:
        if self._tokens < self._burst:
            self._tokens += 1.0

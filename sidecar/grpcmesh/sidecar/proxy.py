"""The transparent proxy core: any method, raw bytes, all four call kinds, with the policies.

A :class:`Relay` is one proxied call: a downstream HTTP/2 stream joined to an
upstream one (the streams and connections are :mod:`grpcmesh.sidecar.h2`'s).
The relay owns both streams' events. Frames move as they arrive, so all four
gRPC call kinds are one code path and nothing is decoded: request DATA goes
upstream, response HEADERS/DATA/trailers come back, each credited to its
sender only once written onward (end-to-end flow control).

Until the upstream answers with response headers the call is still *open to
retry*: a trailers-only error, a refused stream or a connection that could not
be made is settled on that endpoint's breaker and load stats, and - if the
cluster's retry policy, its budget and the caller's deadline allow - the
request (kept, up to ``replay_limit`` bytes) is replayed on another endpoint
after a jittered backoff. Otherwise the error goes back unchanged: code,
message, ``grpc-status-details-bin`` and other trailers.

The caller's ``grpc-timeout`` becomes a deadline here; each attempt is sent
the time remaining, and when it passes the upstream stream is cancelled and
the caller gets DEADLINE_EXCEEDED. A caller's RST_STREAM cancels the upstream
stream. Requests and responses over ``max_message_bytes`` are refused with
RESOURCE_EXHAUSTED by reading the 5-byte message prefixes only.

The happy path runs entirely in protocol callbacks: no task, no future.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import grpc

from grpcmesh.sdk.cluster import Cluster, EndpointState
from grpcmesh.sdk.discovery import Endpoint
from grpcmesh.sdk.retry import NOT_REACHED
from grpcmesh.sidecar.h2.client import ClientConnection, ConnectFailed, Pool
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.h2.grpcwire import (
    MessageLimit,
    decode_message,
    format_timeout,
    reset_status,
    status_code,
    status_trailers,
    trailers_only,
)

__all__ = ["CallResult", "Relay"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_INTERNAL = grpc.StatusCode.INTERNAL
# Connection-specific fields never relayed from one hop to the next (RFC 9113 §8.2.2).
_CONNECTION_FIELDS = frozenset(
    {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}
)
_NOT_REACHED_MD: Headers = [(NOT_REACHED, "1")]
_DIALS: set[asyncio.Task[None]] = set()  # calls waiting for a connection (strong references)


class CallResult:
    """What telemetry wants to know about a relayed call."""

    __slots__ = ("attempts", "code", "state")

    def __init__(self) -> None:
        self.attempts = 0
        self.code = _OK
        self.state: EndpointState | None = None  # of the last attempt


def response_headers(headers: Headers) -> Headers:
    """A response block minus connection-specific fields (usually returned as is)."""
    for k, _ in headers:
        if k in _CONNECTION_FIELDS:
            return [(k, v) for k, v in headers if k not in _CONNECTION_FIELDS]
    return headers


def _status_of(headers: Headers) -> tuple[grpc.StatusCode, str, bool]:
    """(code, message, not-reached marker) of a trailers block."""
    code = message = None
    marked = False
    for k, v in headers:
        if k == "grpc-status":
            code = v
        elif k == "grpc-message":
            message = v
        elif k == NOT_REACHED:
            marked = True
    return status_code(code), decode_message(message) if message else "", marked


class Relay:
    """Joins a downstream stream to attempts on a cluster's endpoints."""

    __slots__ = (
        "_attempt_started",
        "_backlog",
        "_ended",
        "_held",
        "_pools",
        "_replay",
        "_replay_bytes",
        "_replay_limit",
        "_req_limit",
        "_resp_limit",
        "_state",
        "_timer",
        "_tried",
        "cluster",
        "committed",
        "deadline",
        "down",
        "fallback",
        "finished",
        "headers",
        "idempotent",
        "loop",
        "mark_not_reached",
        "note",
        "on_done",
        "result",
        "up",
    )

    def __init__(
        self,
        down: Stream,
        end_stream: bool,
        *,
        deadline: float | None,
        max_message_bytes: int,
        replay_limit: int,
        on_done: Callable[[Relay], None],
    ) -> None:
        down.owner = self
        self.down = down
        self.loop = down.conn.loop
        self.deadline = deadline
        self.on_done = on_done
        self.result = CallResult()
        self.up: Stream | None = None
        self.cluster: Cluster | None = None
        self.headers: Headers = []
        self.idempotent = False
        self.mark_not_reached = False
        self.fallback: bytes | None = None  # answered instead of "app unreachable" (health checks)
        self.note: Any = None  # the listener's bookkeeping (span, start time, ...)
        self.committed = False
        self.finished = False
        self._ended = end_stream  # the caller has sent its whole request
        self._held: Headers | None = None  # response headers of an attempt not yet committed
        self._backlog: list[bytes] = []  # request bytes not yet sent upstream (not yet credited)
        self._replay: list[bytes] | None = []  # request bytes sent upstream, kept for a retry
        self._replay_bytes = 0
        self._replay_limit = replay_limit
        self._req_limit = MessageLimit(max_message_bytes)
        self._resp_limit = MessageLimit(max_message_bytes)
        self._state: EndpointState | None = None
        self._tried: list[Endpoint] = []
        self._attempt_started = 0.0
        self._pools: Callable[[str, EndpointState], Pool] | None = None
        self._timer: asyncio.TimerHandle | None = None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._expire)

    # -- starting ---------------------------------------------------------------------
    def start(
        self,
        cluster: Cluster,
        headers: Headers,
        pools: Callable[[str, EndpointState], Pool],
        *,
        idempotent: bool,
    ) -> None:
        """Sends the first attempt (``headers`` are the onward request headers, minus grpc-timeout)."""
        if self.finished:
            return
        self.cluster = cluster
        self.headers = headers
        self.idempotent = idempotent
        self._pools = pools
        cluster.requests_total += 1
        cluster.retry.budget.record_request()
        self._attempt()

    def fail(self, code: grpc.StatusCode, message: str, extra: Headers | None = None) -> None:
        """Ends the call here with a status (no upstream involved, or no more attempts)."""
        if self.finished:
            return
        held, self._held = self._held, None
        if self.committed or held is not None:
            if held is not None:  # the upstream's response headers go first
                self.down.send_headers(held)
            self.down.send_headers([*status_trailers(code, message), *(extra or ())], True)
        else:
            self.down.send_headers(trailers_only(code, message, extra), True)
        self._finish(code)

    def answer(self, message: bytes) -> None:
        """Ends the call here with one response message and OK (health checks while draining)."""
        if self.finished:
            return
        self.committed = True
        self._held = None
        down = self.down
        down.send_headers([(":status", "200"), ("content-type", "application/grpc")])
        down.send_data(b"\x00" + len(message).to_bytes(4, "big") + message)
        down.send_headers([("grpc-status", "0")], True)
        self._finish(_OK)

    # -- attempts ---------------------------------------------------------------------
    def _attempt(self) -> None:
        if self.finished:
            return
        cluster = self.cluster
        assert cluster is not None
        assert self._pools is not None
        self.result.attempts += 1
        try:
            state = cluster.choose(self._tried)
        except grpc.aio.AioRpcError as err:
            self._failed(err.code(), err.details() or "", None, not_reached=True)
            return
        self._tried.append(state.endpoint)
        self._state = self.result.state = state
        self._attempt_started = time.monotonic()
        pool = self._pools(cluster.service, state)
        conn = pool.ready()
        if conn is not None:
            self._send(conn)
        else:
            task = self.loop.create_task(self._dial(pool, state))
            _DIALS.add(task)
            task.add_done_callback(_DIALS.discard)

    async def _dial(self, pool: Pool, state: EndpointState) -> None:
        try:
            conn = await pool.connect()
        except ConnectFailed as err:
            if self._state is state and not self.finished:
                self._failed(_UNAVAILABLE, str(err), None, not_reached=True)
            elif self._state is state:
                self._settle(_CANCELLED)
            return
        if self._state is not state:
            return
        if self.finished:
            self._settle(_CANCELLED)
            return
        self._send(conn)

    def _send(self, conn: ClientConnection) -> None:
        headers = self.headers
        if self.deadline is not None:
            remaining = self.deadline - self.loop.time()
            headers = [*headers, ("grpc-timeout", format_timeout(max(remaining, 0.0005)))]
        backlog = self._backlog
        replay = self._replay
        up = self.up = conn.open(self, headers, self._ended and not backlog and not self._replay_bytes)
        if self._replay_bytes and replay is not None:  # a retry: the request again (already credited)
            last = len(replay) - 1
            for i, chunk in enumerate(replay):
                up.send_data(chunk, self._ended and not backlog and i == last)
        if backlog:
            self._backlog = []
            last = len(backlog) - 1
            down = self.down
            for i, chunk in enumerate(backlog):
                self._keep(chunk)
                up.send_data(chunk, self._ended and i == last, down)

    def _keep(self, chunk: bytes) -> None:
        """Keeps sent request bytes for a retry, until the limit (then the call is not replayable)."""
        replay = self._replay
        if replay is not None:
            self._replay_bytes += len(chunk)
            if self._replay_bytes > self._replay_limit:
                self._replay = None
            else:
                replay.append(chunk)

    def _settle(self, code: grpc.StatusCode) -> None:
        state, self._state = self._state, None
        if state is not None and self.cluster is not None:
            self.cluster.settle(state, code, time.monotonic() - self._attempt_started)

    def _failed(
        self, code: grpc.StatusCode, message: str, trailers: Headers | None, *, not_reached: bool
    ) -> None:
        """An attempt failed before the response started: retry, or give the caller the error.

        ``trailers`` is the upstream's own final block; relayed as is (after the
        response headers it followed, if any) when the call is not retried.
        """
        up, self.up = self.up, None
        if up is not None and not (up.local_closed and up.remote_closed):
            up.reset(ErrorCode.CANCEL)  # the upstream answered early: stop sending it the request
        self._settle(code)
        cluster = self.cluster
        assert cluster is not None
        policy = cluster.retry
        if (
            policy.retryable_code(code, idempotent=self.idempotent, not_reached=not_reached)
            and self._replay is not None
            and not self.down.conn.closed
        ):
            delay = policy.backoff(self.result.attempts)
            if not policy.give_up(self.result.attempts, delay, self.deadline, self.loop.time()):
                self._held = None  # that attempt's response headers are void
                self.loop.call_later(delay, self._attempt)
                return
        if self.fallback is not None and (not_reached or code is _DEADLINE):
            self._held = None
            self.answer(self.fallback)
            return
        if trailers is not None:
            held, self._held = self._held, None
            if held is not None:
                self.down.send_headers(held)
            if self.mark_not_reached and not_reached:
                trailers = [*trailers, *_NOT_REACHED_MD]
            self.down.send_headers(trailers, True)
            self._finish(code)
            return
        self.fail(code, message, _NOT_REACHED_MD if self.mark_not_reached and not_reached else None)

    # -- events from either stream ---------------------------------------------------
    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        if stream is not self.up or self.finished:
            return  # request trailers (unused by gRPC) or a late event of an abandoned attempt
        if not self.committed:
            if not end_stream:  # response headers: held until the first message commits the attempt
                self._held = response_headers(headers)
                return
            code, message, marked = _status_of(headers)
            if code is not _OK:  # failed before any message: retry, or relay the error
                self._failed(code, message, response_headers(headers), not_reached=marked)
                return
            self._commit()
        if end_stream and (missing := self._resp_limit.missing()) and _status_of(headers)[0] is _OK:
            # grpc clients drop a partial message and report OK (a unary call "returns" None)
            self.fail(_INTERNAL, f"upstream ended the response inside a message ({missing} bytes missing)")
            return
        self.down.send_headers(response_headers(headers), end_stream)
        if end_stream:
            self._finish(_status_of(headers)[0])

    def _commit(self) -> None:
        """The response starts reaching the caller: no more retries, the replay copy goes."""
        self.committed = True
        self._replay = None
        held, self._held = self._held, None
        if held is not None:
            self.down.send_headers(held)

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        if stream is self.down:
            self._request_data(data, end_stream)
            return
        if stream is not self.up or self.finished:
            stream.consumed(len(data))
            return
        if not self.committed:
            self._commit()
        if self._resp_limit.feed(data):
            stream.consumed(len(data))
            stream.reset(ErrorCode.CANCEL)
            self.up = None
            self._settle(_CANCELLED)
            self.fail(_EXHAUSTED, f"response message larger than max ({self._resp_limit.limit} bytes)")
            return
        self.down.send_data(data, end_stream, stream)
        if end_stream:  # a response without trailers is a broken upstream
            self._finish(grpc.StatusCode.INTERNAL)

    def _request_data(self, data: bytes, end_stream: bool) -> None:
        down = self.down
        if self.finished:
            down.consumed(len(data))
            return
        if end_stream:
            self._ended = True
        size = self._req_limit.feed(data)
        if size:
            down.consumed(len(data))
            if self.up is not None:
                self.up.reset(ErrorCode.CANCEL)
                self.up = None
            self._settle(_CANCELLED)  # the caller's fault: not the endpoint's breaker's business
            self.fail(_EXHAUSTED, f"request message larger than max ({size} > {self._req_limit.limit} bytes)")
            return
        up = self.up
        if up is None:  # still routing, dialling or backing off
            self._backlog.append(data)
            return
        if not self.committed:
            self._keep(data)
        up.send_data(data, end_stream, down)

    def on_reset(self, stream: Stream, code: int) -> None:
        if self.finished:
            return
        if stream is self.down:  # the caller cancelled (or its connection went away)
            if self.up is not None:
                self.up.reset(ErrorCode.CANCEL)
                self.up = None
            self._finish(_CANCELLED)
            return
        if stream is not self.up:
            return
        status, message = reset_status(code)
        if not self.committed:
            self._failed(status, message, None, not_reached=code == ErrorCode.REFUSED_STREAM)
            return
        self.up = None
        self.fail(status, message)

    def _expire(self) -> None:
        self._timer = None
        if self.finished:
            return
        if self.up is not None:
            self.up.reset(ErrorCode.CANCEL)
            self.up = None
        self._settle(_DEADLINE)
        if self.fallback is not None:
            self.answer(self.fallback)
            return
        self.fail(_DEADLINE, "deadline exceeded (in the sidecar)")

    # -- the end ------------------------------------------------------------------------
    def _finish(self, code: grpc.StatusCode) -> None:
        self.finished = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._settle(code)
        self.result.code = code
        self._backlog = []
        self._replay = None
        up = self.up
        if up is not None and not (up.local_closed and up.remote_closed):
            up.reset(ErrorCode.CANCEL)  # the response is over: stop the request half too
        down = self.down
        if not down.remote_closed and down.local_closed:
            down.reset(ErrorCode.NO_ERROR)  # the response is complete: stop sending the request
        self.on_done(self)

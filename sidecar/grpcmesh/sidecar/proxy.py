"""The transparent proxy core: any method, raw bytes, all four call kinds, with the policies.

A :class:`Relay` is one proxied call: a downstream HTTP/2 stream joined to an
upstream one (the streams and connections are :mod:`grpcmesh.sidecar.h2`'s).
The relay owns both streams' events. Frames move as they arrive, so all four
gRPC call kinds are one code path and nothing is decoded: request DATA goes
upstream, response HEADERS/DATA/trailers come back, each credited to its
sender only once written onward (end-to-end flow control).

The attempts are an sdk :class:`~grpcmesh.sdk.attempts.AttemptSequence`, the
same object direct mode drives: it picks endpoints, classifies each outcome
(:mod:`grpcmesh.sdk.failures`), and says whether and when to try again
(retry rules, pushback, budget, deadline). The relay only moves bytes and
tracks its :class:`Phase`: until the response starts the call is open to
retry (the request is kept, up to ``replay_limit`` bytes); after that the
upstream's answer goes back unchanged: code, message,
``grpc-status-details-bin`` and other trailers.

The caller's ``grpc-timeout`` becomes a deadline here; each attempt is sent
the time remaining. A per-message size cap applies only when configured
(``max_message_bytes`` > 0): messages otherwise stream through under flow
control. Statuses the relay makes itself carry ``x-mesh-local``.

The happy path runs entirely in protocol callbacks: no task, no future.
"""

from __future__ import annotations

import asyncio
import enum
from collections.abc import Callable

import grpc

from grpcmesh.sdk.attempts import AttemptSequence
from grpcmesh.sdk.cluster import Cluster, EndpointState
from grpcmesh.sdk.failures import Kind, classify
from grpcmesh.sidecar.h2.client import ClientConnection, ConnectFailed, Pool
from grpcmesh.sidecar.h2.connection import Headers, Stream
from grpcmesh.sidecar.h2.frames import ErrorCode
from grpcmesh.sidecar.h2.grpcwire import (
    MessageLimit,
    format_timeout,
    reset_status,
    status_trailers,
    trailers_only,
)
from grpcmesh.sidecar.hop import LOCAL_MD, NOT_REACHED_MD, CallRecord, TrailerStatus

__all__ = ["Phase", "Relay"]

_OK = grpc.StatusCode.OK
_CANCELLED = grpc.StatusCode.CANCELLED
_UNAVAILABLE = grpc.StatusCode.UNAVAILABLE
_DEADLINE = grpc.StatusCode.DEADLINE_EXCEEDED
_EXHAUSTED = grpc.StatusCode.RESOURCE_EXHAUSTED
_INTERNAL = grpc.StatusCode.INTERNAL
_UNCAPPED = (1 << 32) - 1  # the largest length a gRPC message prefix can carry
_DIALS: set[asyncio.Task[None]] = set()  # calls waiting for a connection (strong references)

Pools = Callable[[str, EndpointState], Pool]

REFUSAL_WAIT_S = 1.0  # how long a refused call's answer waits for the rest of its request
REFUSAL_DRAIN_BYTES = 16 << 20  # and how much of it is read and dropped meanwhile


class Phase(enum.IntEnum):
    ROUTING = 0  # no attempt yet (finding the route, starting the cluster)
    ATTEMPT = 1  # an attempt is dialling or in flight; nothing relayed to the caller yet
    BACKOFF = 2  # between attempts
    COMMITTED = 3  # the response is reaching the caller: no more retries
    DONE = 4


# Enum members as module constants: attribute lookups on an enum class are slow in 3.11.
_ROUTING = Phase.ROUTING
_ATTEMPT = Phase.ATTEMPT
_BACKOFF = Phase.BACKOFF
_COMMITTED = Phase.COMMITTED
_DONE = Phase.DONE
_K_CANCELLED = Kind.CANCELLED
_K_ENDPOINT = Kind.ENDPOINT
_K_LOCAL = Kind.LOCAL
_K_NOT_REACHED = Kind.NOT_REACHED


class Relay:
    """Joins a downstream stream to the attempts of a call on a cluster's endpoints."""

    __slots__ = (
        "_backlog",
        "_dropped",
        "_ended",
        "_held",
        "_pools",
        "_refusal",
        "_replay",
        "_replay_bytes",
        "_replay_limit",
        "_req_limit",
        "_resp_limit",
        "_timer",
        "call",
        "deadline",
        "down",
        "fallback",
        "headers",
        "loop",
        "mark_not_reached",
        "on_done",
        "phase",
        "seq",
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
        call: CallRecord | None = None,
    ) -> None:
        down.owner = self
        self.down = down
        self.loop = down.conn.loop
        self.deadline = deadline
        self.on_done = on_done
        self.call = call or CallRecord("")
        self.phase = _ROUTING
        self.up: Stream | None = None
        self.seq: AttemptSequence | None = None
        self.headers: Headers = []
        self.mark_not_reached = False  # inbound: tell the caller's sidecar its app was not reached
        self.fallback: bytes | None = None  # answered instead of "app unreachable" (health checks)
        self._ended = end_stream  # the caller has sent its whole request
        self._held: Headers | None = None  # response headers of an attempt not yet committed
        self._backlog: list[bytes] = []  # request bytes not yet sent upstream (not yet credited)
        self._replay: list[bytes] | None = []  # request bytes sent upstream, kept for a retry
        self._replay_bytes = 0
        self._replay_limit = replay_limit
        cap = max_message_bytes if max_message_bytes > 0 else _UNCAPPED
        self._req_limit = MessageLimit(cap)  # also tracks message boundaries
        self._resp_limit = MessageLimit(cap)
        self._pools: Pools | None = None
        self._refusal: tuple[grpc.StatusCode, str] | None = None  # see refuse()
        self._dropped = 0
        self._timer: asyncio.TimerHandle | None = None
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._expire)

    @property
    def finished(self) -> bool:
        return self.phase is _DONE

    @property
    def committed(self) -> bool:
        return self.phase is _COMMITTED

    # -- starting ---------------------------------------------------------------------
    def start(
        self, cluster: Cluster, headers: Headers, pools: Pools, *, idempotent: bool, method: str
    ) -> None:
        """Sends the first attempt (``headers`` are the onward request headers, minus grpc-timeout)."""
        if self.phase is _DONE:
            return
        self.headers = headers
        self._pools = pools
        self.seq = cluster.attempts(method, idempotent=idempotent, deadline=self.deadline)
        self._attempt()

    def fail(
        self, code: grpc.StatusCode, message: str, extra: Headers | None = None, *, local: bool = True
    ) -> None:
        """Ends the call here with a status (no upstream involved, or no more attempts).

        ``local``: the status is this sidecar's own (marked so no other sidecar
        counts it against an endpoint), not its reading of an upstream failure.
        """
        if self.phase is _DONE:
            return
        extra = [*(extra or ()), *LOCAL_MD] if local else extra
        held, self._held = self._held, None
        if self.phase is _COMMITTED or held is not None:
            if held is not None:  # the upstream's response headers go first
                self.down.send_headers(held)
            self.down.send_headers([*status_trailers(code, message), *(extra or ())], True)
        else:
            self.down.send_headers(trailers_only(code, message, extra), True)
        self._finish(code, _K_LOCAL if local else classify(code, transport=True))

    def refuse(self, code: grpc.StatusCode, message: str) -> None:
        """A local refusal before any attempt (authorization), sent once the caller's request ended.

        A gRPC client still writing its request stream when the status arrives
        may report its own failed write instead (grpc-python: INTERNAL "Failed
        execute_batch"). So the rest of the request is read and dropped first,
        for at most ``REFUSAL_WAIT_S`` (or the deadline) and ``REFUSAL_DRAIN_BYTES``;
        then the status goes out, with a reset if the caller is still sending.
        """
        if self._ended or self.phase is _DONE:
            self.fail(code, message)
            return
        self._refusal = (code, message)
        if self._timer is not None:
            self._timer.cancel()
        at = self.loop.time() + REFUSAL_WAIT_S
        self._timer = self.loop.call_at(min(at, self.deadline or at), self._refuse_now)

    def _refuse_now(self) -> None:
        refusal, self._refusal = self._refusal, None
        self._timer = None
        if refusal is not None:
            self.fail(*refusal)

    def answer(self, message: bytes) -> None:
        """Ends the call here with one response message and OK (health checks while draining)."""
        if self.phase is _DONE:
            return
        self.phase = _COMMITTED
        self._held = None
        down = self.down
        down.send_headers([(":status", "200"), ("content-type", "application/grpc")])
        down.send_data(b"\x00" + len(message).to_bytes(4, "big") + message)
        down.send_headers([("grpc-status", "0")], True)
        self._finish(_OK, _K_LOCAL)

    # -- attempts ---------------------------------------------------------------------
    def _attempt(self) -> None:
        if self.phase is _DONE:
            return
        seq = self.seq
        assert seq is not None
        assert self._pools is not None
        self.phase = _ATTEMPT
        try:
            state = seq.next()
        except grpc.aio.AioRpcError as err:  # nothing to try: this sidecar's own answer
            self.call.attempts = seq.attempts
            self.fail(err.code(), err.details() or "", NOT_REACHED_MD if self.mark_not_reached else None)
            return
        self.call.attempts = seq.attempts
        self.call.endpoint = state
        pool = self._pools(seq.cluster.service, state)
        conn = pool.ready()
        if conn is not None:
            self._send(conn)
        else:
            task = self.loop.create_task(self._dial(pool, state))
            _DIALS.add(task)
            task.add_done_callback(_DIALS.discard)

    async def _dial(self, pool: Pool, state: EndpointState) -> None:
        seq = self.seq
        assert seq is not None
        try:
            conn = await pool.connect()
        except ConnectFailed as err:
            if seq.state is state:
                if self.phase is _DONE:
                    seq.settle(_K_CANCELLED, _CANCELLED)
                else:
                    self._attempt_failed(_UNAVAILABLE, str(err), None, _K_NOT_REACHED, None)
            return
        if seq.state is not state:
            return
        if self.phase is _DONE:
            seq.settle(_K_CANCELLED, _CANCELLED)
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

    def _drop_up(self) -> None:
        up, self.up = self.up, None
        if up is not None and not (up.local_closed and up.remote_closed):
            up.reset(ErrorCode.CANCEL)

    def _attempt_failed(
        self,
        code: grpc.StatusCode,
        message: str,
        trailers: Headers | None,
        kind: Kind,
        pushback: float | None,
    ) -> None:
        """An attempt failed before the response started: retry, or give the caller the error.

        ``trailers`` is the upstream's own final block; relayed as is (after the
        response headers it followed, if any) when the call is not retried.
        """
        self._drop_up()  # the upstream answered early: stop sending it the request
        seq = self.seq
        assert seq is not None
        seq.settle(kind, code)
        if self._replay is not None and not self.down.conn.closed:
            wait = seq.retry_delay(kind, code, pushback)
            if wait is not None:
                self._held = None  # that attempt's response headers are void
                self.phase = _BACKOFF
                self.loop.call_later(wait, self._attempt)
                return
        if self.fallback is not None and (kind is _K_NOT_REACHED or code is _DEADLINE):
            self._held = None
            self.answer(self.fallback)
            return
        marker = NOT_REACHED_MD if self.mark_not_reached and kind is _K_NOT_REACHED else None
        if trailers is None:
            self.fail(code, message, marker, local=False)
            return
        held, self._held = self._held, None
        if held is not None:
            self.down.send_headers(held)
        self.down.send_headers([*trailers, *marker] if marker else trailers, True)
        self._finish(code, kind)

    # -- events from either stream ---------------------------------------------------
    def on_headers(self, stream: Stream, headers: Headers, end_stream: bool) -> None:
        if stream is not self.up or self.phase is _DONE:
            return  # request trailers (unused by gRPC) or a late event of an abandoned attempt
        seq = self.seq
        assert seq is not None
        if self.phase is not _COMMITTED:
            seq.responded()
            if not end_stream:  # response headers: held until the first message commits the attempt
                self._held = headers
                return
            status = TrailerStatus(headers)
            if status.code is not _OK:  # failed before any message: retry, or relay the error
                kind = classify(status.code, not_reached=status.not_reached, local=status.local)
                self._attempt_failed(status.code, status.message, headers, kind, status.pushback)
                return
            self._commit()
        if not end_stream:
            self.down.send_headers(headers, False)
            return
        status = TrailerStatus(headers)
        if status.code is _OK and (missing := self._resp_limit.missing()):
            # grpc clients drop a partial message and report OK (a unary call "returns" None)
            self.fail(_INTERNAL, f"upstream ended the response inside a message ({missing} bytes missing)")
            return
        self.down.send_headers(headers, True)
        self._finish(status.code, classify(status.code, not_reached=status.not_reached, local=status.local))

    def _commit(self) -> None:
        """The response starts reaching the caller: no more retries, the replay copy goes."""
        self.phase = _COMMITTED
        self._replay = None
        held, self._held = self._held, None
        if held is not None:
            self.down.send_headers(held)

    def on_data(self, stream: Stream, data: bytes, end_stream: bool) -> None:
        if stream is self.down:
            self._request_data(data, end_stream)
            return
        if stream is not self.up or self.phase is _DONE:
            stream.consumed(len(data))
            return
        if self.phase is not _COMMITTED:
            self._commit()
        limit = self._resp_limit
        if limit.feed(data):
            stream.consumed(len(data))
            self._drop_up()
            self.fail(
                _EXHAUSTED, f"response message larger than the sidecar's max_message_bytes ({limit.limit})"
            )
            return
        self.down.send_data(data, end_stream, stream)
        if end_stream:  # a response without trailers is a broken upstream
            self._finish(_INTERNAL, _K_ENDPOINT)

    def _request_data(self, data: bytes, end_stream: bool) -> None:
        down = self.down
        if self.phase is _DONE:
            down.consumed(len(data))
            return
        if self._refusal is not None:  # refused: read to the end (bounded) and drop
            down.consumed(len(data))
            self._dropped += len(data)
            if end_stream or self._dropped > REFUSAL_DRAIN_BYTES:
                self._ended = end_stream
                self._refuse_now()
            return
        if end_stream:
            self._ended = True
        limit = self._req_limit
        if size := limit.feed(data):
            down.consumed(len(data))
            self._drop_up()  # the caller's message: not the endpoint's breaker's business
            self.fail(
                _EXHAUSTED,
                f"request message larger than the sidecar's max_message_bytes ({size} > {limit.limit})",
            )
            return
        up = self.up
        if up is None:  # still routing, dialling or backing off
            self._backlog.append(data)
            return
        if self.phase is not _COMMITTED:
            self._keep(data)
        up.send_data(data, end_stream, down)

    def on_reset(self, stream: Stream, code: int) -> None:
        if self.phase is _DONE:
            return
        if stream is self.down:  # the caller cancelled (or its connection went away)
            self._drop_up()
            self._finish(_CANCELLED, _K_CANCELLED)
            return
        if stream is not self.up:
            return
        status, message = reset_status(code)
        if self.phase is not _COMMITTED:
            refused = code == ErrorCode.REFUSED_STREAM
            kind = _K_NOT_REACHED if refused else classify(status, transport=True)
            self._attempt_failed(status, message, None, kind, None)
            return
        self.up = None
        self.fail(status, message, local=False)

    def _expire(self) -> None:
        self._timer = None
        if self.phase is _DONE:
            return
        self._drop_up()
        if self.seq is not None:
            self.seq.settle(_K_ENDPOINT, _DEADLINE)  # a timeout says something about the endpoint
        if self.fallback is not None:
            self.answer(self.fallback)
            return
        self.fail(_DEADLINE, "deadline exceeded (in the sidecar)")

    # -- the end ------------------------------------------------------------------------
    def _finish(self, code: grpc.StatusCode, kind: Kind) -> None:
        self.phase = _DONE
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self.seq is not None:
            self.seq.settle(kind, code)
        self.call.code = code
        self._backlog = []
        self._replay = None
        self._drop_up()  # the response is over: stop the request half too
        down = self.down
        if not down.remote_closed and down.local_closed:
            down.reset(ErrorCode.NO_ERROR)  # the response is complete: stop sending the request
        self.on_done(self)

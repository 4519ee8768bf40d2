"""A replayable view of a streamed request, so a stream can be retried before it commits.

The client's request stream can be read only once, but a retry on another
endpoint must send the same messages again. :class:`Replay` is the single
reader of the source; every attempt gets its own iterator over a shared
history. Once the call commits (the first response arrived) or the history
exceeds its byte limit, history is dropped and the stream is no longer
replayable. A message read by an abandoned attempt is handed to the live one,
so nothing is lost when attempts overlap.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator

__all__ = ["Replay"]


class Replay:
    def __init__(self, source: AsyncIterator[bytes], limit_bytes: int) -> None:
        self._source = source
        self._limit = limit_bytes
        self._history: list[bytes] = []
        self._size = 0
        self._recording = True
        self._eof = False
        self._lock = asyncio.Lock()
        self._handoff: deque[bytes] = deque()
        self._active = 0

    @property
    def replayable(self) -> bool:
        return self._recording

    def commit(self) -> None:
        """The call is committed: stop recording and free the history."""
        self._recording = False
        self._history = []

    def iterate(self) -> AsyncIterator[bytes]:
        """A fresh iterator for a new attempt; older iterators stop yielding."""
        self._active += 1
        return self._iterate(self._active)

    async def _iterate(self, me: int) -> AsyncIterator[bytes]:
        i = 0
        while self._active == me:
            if self._recording and i < len(self._history):
                i += 1
                yield self._history[i - 1]
                continue
            if self._handoff:
                yield self._handoff.popleft()
                continue
            if self._eof:
                return
            async with self._lock:
                if self._eof or self._handoff or (self._recording and i < len(self._history)):
                    continue
                try:
                    msg = await self._source.__anext__()
                except StopAsyncIteration:
                    self._eof = True
                    return
                if self._recording:
                    self._size += len(msg)
                    if self._size > self._limit:
                        self.commit()
                    else:
                        self._history.append(msg)
            if self._recording:
                continue  # picked up from history on the next turn
            if self._active != me:
                self._handoff.append(msg)
                return
            yield msg

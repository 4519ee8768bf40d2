"""A projector: keeps one read model current from the event store's Subscribe.

It subscribes after its stored checkpoint (catch-up, then live), applies each
batch through :meth:`ReadStore.apply_batch` (model + checkpoint in one
transaction), publishes the new position to waiting queries, and on any stream
failure (event store restart, RESOURCE_EXHAUSTED for a slow reader) backs off
and resubscribes from the checkpoint. The subscription is unfiltered so the
checkpoint is a global position every query's ``min_position`` can be compared to.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass

from grpcmesh.api.v1 import eventstore_pb2 as es
from grpcmesh.api.v1 import eventstore_pb2_grpc as es_grpc
from grpcmesh.sdk import AsyncMeshClient, MeshError
from grpcmesh.sdk.waiting import cancel_and_wait
from grpcmesh.services.common.headwatch import HeadWatch
from grpcmesh.services.cqrs.queries import Projection
from grpcmesh.services.querybus.readstore import ReadStore

__all__ = ["Projector", "ProjectorConfig", "reached"]

log = logging.getLogger("grpcmesh.querybus")


@dataclass(frozen=True, slots=True)
class ProjectorConfig:
    batch_size: int = 256  # events per Subscribe response during catch-up
    retry_initial: float = 0.05  # resubscribe backoff (doubles up to retry_max)
    retry_max: float = 2.0


async def reached(watch: HeadWatch, position: int, timeout: float) -> bool:  # noqa: ASYNC109 - query deadline
    """Waits until ``watch.head`` is at least ``position``; False after ``timeout`` seconds."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while watch.head < position:
        left = deadline - loop.time()
        if left <= 0:
            return False
        await watch.wait_beyond(watch.head, left)
    return True


class Projector:
    """Runs one projection in a background task; ``watch.head`` is its checkpoint."""

    def __init__(
        self,
        projection: Projection,
        store: ReadStore,
        client: AsyncMeshClient,
        target: str = "eventstore",
        config: ProjectorConfig | None = None,
    ) -> None:
        self.projection = projection
        self.store = store
        self.config = config or ProjectorConfig()
        self.watch = HeadWatch()  # head = the checkpoint: last position applied
        self.caught_up = asyncio.Event()
        self._stub = client.stub(es_grpc.EventStoreStub, target=target)
        self._task: asyncio.Task[None] | None = None

    @property
    def name(self) -> str:
        return self.projection.name

    async def written(self, position: int, budget: float) -> bool:
        """Whether the event store holds an event at ``position`` (True when it cannot tell)."""
        try:
            call = self._stub.ReadAll(es.ReadAllRequest(from_position=position, max_count=1), timeout=budget)
            async for _event in call:
                return True
        except MeshError:
            return True  # unknown: let the caller wait as before
        return False

    async def start(self) -> None:
        self.watch.publish(await self.store.checkpoint(self.name))
        log.info("projection %s resumes after position %d", self.name, self.watch.head)
        self._task = asyncio.create_task(self._run(), name=f"projector-{self.name}")

    async def stop(self) -> None:
        await cancel_and_wait(self._task)
        self._task = None

    async def _run(self) -> None:
        delay = self.config.retry_initial
        while True:
            try:
                live = await self._follow()
                log.warning("projection %s: subscription ended, resubscribing", self.name)
            except _Broken as broken:
                live, err = broken.live, broken.cause
                log.warning(
                    "projection %s: subscription failed (%s), retrying in %.2fs", self.name, err, delay
                )
            except Exception:  # a projection bug or a bad event: keep the checkpoint, say so, retry
                live, delay = False, self.config.retry_max
                log.exception("projection %s failed after position %d; retrying", self.name, self.watch.head)
            if live:  # it worked for a while: back off afresh
                delay = self.config.retry_initial
            await asyncio.sleep(delay)
            delay = min(delay * 2, self.config.retry_max)

    async def _follow(self) -> bool:
        """Follows one subscription until it ends; True if it got live (past the caught-up marker)."""
        live = False
        request = es.SubscribeRequest(after_position=self.watch.head, batch_size=self.config.batch_size)
        call = self._stub.Subscribe(request)
        try:
            async for response in call:
                kind = response.WhichOneof("content")
                if kind == "event":
                    await self._apply([response.event])
                elif kind == "events":
                    await self._apply(response.events.events)
                elif kind == "caught_up":
                    live = True
                    self.watch.publish(response.caught_up.position)
                    if not self.caught_up.is_set():
                        log.info("projection %s caught up at %d", self.name, response.caught_up.position)
                        self.caught_up.set()
        except MeshError as err:
            raise _Broken(err, live) from err
        finally:
            call.cancel()  # on stop or a projection error: end the stream now, not at channel close
        return live

    async def _apply(self, events: Sequence[es.RecordedEvent]) -> None:
        if events:
            self.watch.publish(await self.store.apply_batch(self.projection, events))


class _Broken(Exception):
    """A subscription failed; ``live`` says whether it had caught up first."""

    def __init__(self, cause: MeshError, live: bool) -> None:
        super().__init__(str(cause))
        self.cause = cause
        self.live = live

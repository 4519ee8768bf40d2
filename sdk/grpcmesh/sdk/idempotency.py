"""What the retry policy needs to know of a method: may it be retried on an app-level error?

The relay forwards every call kind as raw frames, so the one fact it needs is the
descriptor's ``idempotency_level`` (NO_SIDE_EFFECTS / IDEMPOTENT). It is learned
from generated modules (direct mode), the app's server reflection (inbound
sidecar), or the reflection of an upstream reached through its sidecar
(outbound); ``[methods]`` config overrides it. Unknown methods are treated as
non-idempotent (never retried after they may have reached the app) until learned.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Iterable, Mapping
from dataclasses import dataclass

import grpc
from google.protobuf import descriptor, descriptor_pb2
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

__all__ = ["UNKNOWN_METHOD", "MethodCatalog", "MethodInfo", "fetch_reflection"]

log = logging.getLogger("grpcmesh.idempotency")


@dataclass(frozen=True, slots=True)
class MethodInfo:
    idempotent: bool = False
    known: bool = True


UNKNOWN_METHOD = MethodInfo(idempotent=False, known=False)

_IDEMPOTENT_LEVELS = (
    descriptor_pb2.MethodOptions.NO_SIDE_EFFECTS,
    descriptor_pb2.MethodOptions.IDEMPOTENT,
)


class MethodCatalog:
    """``/pkg.Service/Method`` → :class:`MethodInfo`, filled from descriptors and config."""

    def __init__(self, overrides: Mapping[str, MethodInfo] | None = None) -> None:
        self._methods: dict[str, MethodInfo] = {}
        self._overrides = dict(overrides or {})
        self._services: set[str] = set()

    def get(self, path: str) -> MethodInfo:
        found = self._overrides.get(path) or self._methods.get(path)
        return found if found is not None else UNKNOWN_METHOD

    def knows_service(self, service: str) -> bool:
        return service in self._services

    @property
    def services(self) -> frozenset[str]:
        return frozenset(self._services)

    def snapshot(self) -> dict[str, str]:
        """``path`` → ``idempotent`` or ``not idempotent``, for the admin page."""
        merged = {**self._methods, **self._overrides}
        return {p: "idempotent" if i.idempotent else "not idempotent" for p, i in sorted(merged.items())}

    def add(self, path: str, info: MethodInfo) -> None:
        self._methods[path] = info
        self._services.add(path.split("/")[1])

    def learn_service(self, service: descriptor.ServiceDescriptor) -> None:
        """From a generated module, e.g. ``pb2.DESCRIPTOR.services_by_name['Orders']``."""
        for m in service.methods:
            level = m.GetOptions().idempotency_level
            self.add(
                f"/{service.full_name}/{m.name}",
                MethodInfo(level in _IDEMPOTENT_LEVELS),
            )

    def learn_file(self, fdp: descriptor_pb2.FileDescriptorProto, only: Iterable[str] = ()) -> None:
        """From a serialized file descriptor (what reflection returns)."""
        wanted = set(only)
        prefix = f"{fdp.package}." if fdp.package else ""
        for svc in fdp.service:
            full = prefix + svc.name
            if wanted and full not in wanted:
                continue
            for m in svc.method:
                self.add(
                    f"/{full}/{m.name}",
                    MethodInfo(m.options.idempotency_level in _IDEMPOTENT_LEVELS),
                )


async def _reflect(
    channel: grpc.aio.Channel,
    requests: list[reflection_pb2.ServerReflectionRequest],
    timeout: float,  # noqa: ASYNC109 - a gRPC deadline
    metadata: tuple[tuple[str, str], ...],
) -> list[reflection_pb2.ServerReflectionResponse]:
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)

    async def gen() -> AsyncIterator[reflection_pb2.ServerReflectionRequest]:
        for r in requests:
            yield r

    call = stub.ServerReflectionInfo(gen(), timeout=timeout, metadata=metadata)
    answers: list[reflection_pb2.ServerReflectionResponse] = []
    async for resp in call:  # one answer per request; a server sending more is not heard
        answers.append(resp)
        if len(answers) == len(requests):
            call.cancel()
            break
    return answers


async def fetch_reflection(
    channel: grpc.aio.Channel,
    catalog: MethodCatalog,
    *,
    services: Iterable[str] | None = None,
    timeout: float = 2.0,  # noqa: ASYNC109 - a gRPC deadline
    metadata: tuple[tuple[str, str], ...] = (),
) -> list[str]:
    """Fills ``catalog`` from the server reflection behind ``channel``; returns the services found.

    ``services=None`` lists every service first. Errors are logged and yield an
    empty result: a missing reflection service only means no retries of app-level errors.
    """
    try:
        if services is None:
            listing = await _reflect(
                channel, [reflection_pb2.ServerReflectionRequest(list_services="")], timeout, metadata
            )
            names = [s.name for r in listing for s in r.list_services_response.service]
        else:
            names = list(services)
        names = [n for n in names if not n.startswith("grpc.reflection.")]
        if not names:
            return []
        reqs = [reflection_pb2.ServerReflectionRequest(file_containing_symbol=n) for n in names]
        for resp in await _reflect(channel, reqs, timeout, metadata):
            for raw in resp.file_descriptor_response.file_descriptor_proto:
                catalog.learn_file(descriptor_pb2.FileDescriptorProto.FromString(raw), names)
        return names
    except grpc.aio.AioRpcError as err:
        log.debug("reflection unavailable: %s %s", err.code().name, err.details())
        return []
    except Exception as err:  # any failure, e.g. a corrupt answer: reflection must never stop the caller
        log.warning("reflection answer unusable, going on without it: %s: %s", type(err).__name__, err)
        return []

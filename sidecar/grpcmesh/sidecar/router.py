"""Outbound routing: which mesh service receives ``/pkg.Service/Method``.

In order: the ``x-mesh-service`` metadata, the ``:authority`` the client
dialled (when the transport exposes it and it is not the sidecar's own
address), an explicit ``[routes]`` entry, and finally the proto service name
advertised by registering sidecars in endpoint meta ``grpc_services``
(comma-separated full names). The last step needs no config: candidate mesh
names are derived from the proto name (``shop.v1.Orders`` → ``orders``,
``order``, ``Orders``, ``shop.v1.Orders``) and one is accepted if its
endpoints advertise that proto service (or, for registries that advertise
nothing, such as a static file, if it has endpoints at all). Results are cached; misses are
re-checked at most once a second so a service that registers later is found.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping

from grpcmesh.sdk.discovery import Resolver
from grpcmesh.sdk.headers import MESH_SERVICE, names_a_service

__all__ = ["GRPC_SERVICES_META", "RouteError", "Router", "candidates"]

GRPC_SERVICES_META = "grpc_services"
_MISS_TTL_S = 1.0


class RouteError(Exception):
    """No route; the message names everything that was tried."""


def candidates(proto_service: str) -> list[str]:
    """Mesh names a proto service plausibly registers under, most likely first."""
    short = proto_service.rsplit(".", 1)[-1]
    names = [short.lower()]
    for suffix in ("service", "api"):
        if names[0].endswith(suffix) and len(names[0]) > len(suffix):
            names.append(names[0][: -len(suffix)])
    if names[0].endswith("s"):
        names.append(names[0][:-1])
    names += [short, proto_service, proto_service.lower()]
    seen: list[str] = []
    for n in names:
        if n and n not in seen:
            seen.append(n)
    return seen


class Router:
    def __init__(
        self,
        resolver: Resolver,
        routes: Mapping[str, str] | None = None,
        *,
        own_authorities: Iterable[str] = (),
    ) -> None:
        self._resolver = resolver
        self._routes = dict(routes or {})
        self._learned: dict[str, str] = {}
        self._misses: dict[str, float] = {}
        self._own = set(own_authorities)

    def cached(self, method: str, metadata: Iterable[tuple[str, str | bytes]]) -> str | None:
        """The route when it needs no discovery lookup (the per-call fast path)."""
        authority = None
        for k, v in metadata:
            if k == MESH_SERVICE:
                return v if isinstance(v, str) else v.decode()
            if k == ":authority":
                authority = v if isinstance(v, str) else v.decode()
        if authority and authority not in self._own:
            host = authority.rsplit(":", 1)[0] if authority.count(":") == 1 else authority
            if names_a_service(host):
                return host  # a name the app dialled (not an address): the mesh service
        proto = _proto_service(method)
        return self._routes.get(proto) or self._learned.get(proto)

    async def route(self, method: str, metadata: Iterable[tuple[str, str | bytes]]) -> str:
        md = list(metadata)
        found = self.cached(method, md)
        if found:
            return found
        proto = _proto_service(method)
        names = candidates(proto) if proto else []
        now = time.monotonic()
        if proto and now - self._misses.get(proto, -_MISS_TTL_S) >= _MISS_TTL_S:
            weak: str | None = None
            for name in names:
                res = await self._resolver.resolve(name)
                if any(proto in _advertised(e.meta) for e in res.endpoints):
                    weak = name
                    break
                if weak is None and res.endpoints and not any(_advertised(e.meta) for e in res.endpoints):
                    weak = name  # static registries advertise nothing: the name match must do
            if weak is not None:
                self._learned[proto] = weak
                self._misses.pop(proto, None)
                return weak
            self._misses[proto] = now
        raise RouteError(
            f"no route for {method!r}: no {MESH_SERVICE} metadata, no usable :authority, "
            f"no [routes] entry for {proto!r}, and no service among {names} advertises "
            f"{proto!r} in endpoint meta {GRPC_SERVICES_META!r}"
        )

    def learn(self, proto_service: str, mesh_service: str) -> None:
        self._learned[proto_service] = mesh_service

    def snapshot(self) -> dict[str, str]:
        return {**self._learned, **self._routes}


def _proto_service(method: str) -> str:
    parts = method.split("/")
    return parts[1] if len(parts) == 3 else ""


def _advertised(meta: Mapping[str, str]) -> list[str]:
    raw = meta.get(GRPC_SERVICES_META, "")
    return [s.strip() for s in raw.split(",") if s.strip()]

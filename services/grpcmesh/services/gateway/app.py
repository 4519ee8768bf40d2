"""The aiohttp application: match route → authenticate → rate limit → cache → call → answer.

Every answer carries ``X-Request-Id`` (the caller's, or a new one, also sent
upstream as ``x-request-id``); every failure is the JSON error body of
:mod:`~grpcmesh.services.gateway.errors`. Server-streaming methods answer a JSON
array, or NDJSON (one message per line, flushed as it arrives) when the client
sends ``Accept: application/x-ndjson``; an error after the first line becomes a
final ``{"error": {...}}`` line.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from typing import Any

from aiohttp import web

from grpcmesh.sdk.errors import MeshError
from grpcmesh.sdk.headers import REQUEST_ID, TRACEPARENT, TRACESTATE, new_request_id
from grpcmesh.services.gateway.auth import Authenticator, Principal
from grpcmesh.services.gateway.cache import CachedResponse, ResponseCache, cache_directives, cache_key
from grpcmesh.services.gateway.config import GatewayConfig
from grpcmesh.services.gateway.errors import GatewayError, error_body, from_mesh_error
from grpcmesh.services.gateway.metrics import GatewayMetrics
from grpcmesh.services.gateway.ratelimit import Limiter
from grpcmesh.services.gateway.routes import Route, Router
from grpcmesh.services.gateway.transcode import build_request, parse_body, strict_query, to_json
from grpcmesh.services.gateway.upstream import Upstream, parse_timeout

__all__ = ["Gateway"]

log = logging.getLogger("grpcmesh.gateway")

JSON = "application/json"
NDJSON = "application/x-ndjson"
_REQUEST_ID_OK = re.compile(r"[\x21-\x7e]{1,200}")
_BLOCKED_KEYS = 10_000  # client addresses remembered as blocked after failed authentications


def _too_many_failures(retry_after: float) -> GatewayError:
    seconds = str(max(1, int(retry_after + 0.999)))
    message = "too many failed authentications from this address; retry later"
    return GatewayError(429, "RESOURCE_EXHAUSTED", message, headers={"Retry-After": seconds})


class Gateway:
    """One gateway: its routes, policies and upstream; :meth:`handle` answers any request."""

    def __init__(
        self,
        config: GatewayConfig,
        router: Router,
        upstream: Upstream,
        limiter: Limiter,
        cache: ResponseCache,
        metrics: GatewayMetrics | None = None,
    ) -> None:
        unknown = sorted(set(config.routes) - set(router.by_name))
        if unknown:
            raise ValueError(f"gateway config [routes]: {unknown[0]!r} is not an annotated method")
        self.config = config
        self.router = router
        self.upstream = upstream
        self.limiter = limiter
        self.cache = cache
        self.metrics = metrics or GatewayMetrics()
        self.auth = Authenticator(config.auth) if config.auth else None
        self._blocked: OrderedDict[str, float] = OrderedDict()  # address -> blocked until (monotonic)

    def application(self) -> web.Application:
        app = web.Application(client_max_size=4 * 1024 * 1024)
        app.router.add_get("/healthz", self._healthz)
        app.router.add_get("/metrics", self._metrics)
        app.router.add_get("/openapi.json", self._openapi)
        app.router.add_route("*", r"/{tail:[\s\S]*}", self.handle)  # any path, newlines (%0A) too
        app.on_cleanup.append(self._close)
        return app

    async def _close(self, _app: web.Application) -> None:
        await self.upstream.close()
        await self.limiter.close()

    async def _healthz(self, _request: web.Request) -> web.Response:
        return web.json_response({"status": "ok", "routes": len(self.router.routes)})

    async def _metrics(self, _request: web.Request) -> web.Response:
        return web.Response(body=self.metrics.render(), content_type="text/plain", charset="utf-8")

    async def _openapi(self, _request: web.Request) -> web.Response:
        from grpcmesh.services.gateway.openapi import openapi_document

        return web.json_response(openapi_document(self.config, self.router.routes))

    def _client_key(self, request: web.Request, principal: Principal | None) -> str:
        if principal is not None:
            return f"sub:{principal.subject}"
        return self._address_key(request)

    def _address_key(self, request: web.Request) -> str:
        forwarded = request.headers.get("X-Forwarded-For") if self.config.trust_forwarded_for else None
        ip = forwarded.split(",")[0].strip() if forwarded else request.remote
        return f"ip:{ip or 'unknown'}"

    async def handle(self, request: web.Request) -> web.StreamResponse:
        incoming = request.headers.get(REQUEST_ID, "")
        rid = incoming if _REQUEST_ID_OK.fullmatch(incoming) else new_request_id()
        started = time.perf_counter()
        name = "unmatched"
        try:
            route, bound = self.router.match(request.method, request.rel_url.raw_path)
            name = route.name
            response = await self._serve(request, route, bound, rid)
        except GatewayError as err:
            response = self._error(err, rid)
        except MeshError as err:
            response = self._error(from_mesh_error(err), rid)
            if response.status == 503:  # say which mesh service was looked up, so a mapping typo shows
                log.warning(
                    "503 for %s: mesh service %r unavailable: %s",
                    name,
                    self.upstream.target_name(self.router.by_name[name]),
                    err.details,
                    extra={"request_id": rid, "route": name},
                )
        except web.HTTPException as err:  # raised by aiohttp itself, e.g. 413 for an oversized body
            code = err.reason.upper().replace(" ", "_")
            response = self._error(GatewayError(err.status, code, err.reason), rid)
        except Exception:
            log.exception("gateway failure", extra={"request_id": rid, "route": name})
            response = self._error(GatewayError(500, "INTERNAL", "internal error"), rid)
        elapsed = time.perf_counter() - started
        self.metrics.observe(name, response.status, elapsed)
        if self.config.access_log:
            log.info(
                "%s %s %d %.2fms route=%s request_id=%s",
                request.method,
                request.rel_url.raw_path,
                response.status,
                elapsed * 1000,
                name,
                rid,
                extra={"request_id": rid, "route": name},
            )
        return response

    def _error(self, err: GatewayError, rid: str) -> web.Response:
        headers = {**err.headers, "X-Request-Id": rid}
        return web.Response(status=err.status, body=error_body(err, rid), content_type=JSON, headers=headers)

    async def _serve(
        self, request: web.Request, route: Route, bound: dict[str, str], rid: str
    ) -> web.StreamResponse:
        policy = self.config.policy(route.name)
        principal = await self._authenticate(request, policy.public, policy.scopes) if self.auth else None
        limit = self.config.limit_for(route.name)
        if limit is not None:
            decision = await self.limiter.acquire(
                f"{self._client_key(request, principal)}|{route.name}", limit
            )
            if not decision.allowed:
                raise GatewayError(
                    429,
                    "RESOURCE_EXHAUSTED",
                    f"rate limit of {limit.rate:g}/s (burst {limit.burst}) exceeded for {route.name}",
                    headers={"Retry-After": decision.retry_after_header},
                )
        query = strict_query(request.rel_url.raw_query_string)
        ndjson = route.server_streaming and NDJSON in request.headers.get("Accept", "")
        ttl = self.config.cache_ttl_for(route.name)
        cacheable = route.verb == "GET" and route.no_side_effects and ttl > 0 and not ndjson
        directives = cache_directives(request.headers.get("Cache-Control"))
        bypass = bool(directives & {"no-cache", "no-store"})
        key = cache_key(route.verb, request.rel_url.raw_path, query, principal.subject if principal else None)
        if cacheable and not bypass:
            hit = self.cache.get(key)
            self.metrics.cache.labels("hit" if hit else "miss").inc()
            if hit is not None:
                return self._answer(hit, rid, "HIT")
        body = parse_body(await self._read_body(request), self.config.max_json_depth) if route.body else {}
        message = build_request(route, bound, body, query)
        deadline = parse_timeout(
            request.headers.get("grpc-timeout"), self.config.timeout, self.config.max_timeout
        )
        metadata = [(REQUEST_ID, rid)]
        metadata += [(h, request.headers[h]) for h in (TRACEPARENT, TRACESTATE) if h in request.headers]
        if ndjson:
            return await self._stream_ndjson(request, route, message, deadline, metadata, rid)
        if route.server_streaming:
            items = [
                self._json(route, m)
                async for m in self.upstream.stream(route, message, deadline=deadline, metadata=metadata)
            ]
            payload: Any = items
        else:
            reply = await self.upstream.unary(route, message, deadline=deadline, metadata=metadata)
            payload = self._json(route, reply)
        answer = CachedResponse(200, JSON, json.dumps(payload).encode())
        if cacheable and "no-store" not in directives:
            self.cache.put(key, answer, ttl)
        return self._answer(answer, rid, ("BYPASS" if bypass else "MISS") if cacheable else None)

    async def _authenticate(
        self, request: web.Request, public: bool, scopes: tuple[str, ...]
    ) -> Principal | None:
        """The caller; failed authentications are counted per client address, and an address
        over ``auth_failure_limit`` gets 429 for any credentials (before they are even checked)
        until it may retry."""
        assert self.auth is not None
        address = self._address_key(request)
        authorization = request.headers.get("Authorization")
        now = time.monotonic()
        until = self._blocked.get(address, 0.0)
        if authorization and until > now:
            raise _too_many_failures(until - now)
        try:
            return self.auth.authenticate(authorization, public=public, scopes=scopes)
        except GatewayError as err:
            if err.status != 401:
                raise
            decision = await self.limiter.acquire(f"authfail|{address}", self.config.auth_failure_limit)
            if decision.allowed:
                raise
            self._blocked[address] = now + decision.retry_after
            self._blocked.move_to_end(address)
            if len(self._blocked) > _BLOCKED_KEYS:
                self._blocked.popitem(last=False)
            raise _too_many_failures(decision.retry_after) from None

    async def _read_body(self, request: web.Request) -> bytes:
        try:
            async with asyncio.timeout(self.config.body_timeout):
                return await request.read()
        except TimeoutError:
            message = f"request body not received within {self.config.body_timeout:g}s"
            raise GatewayError(408, "DEADLINE_EXCEEDED", message, headers={"Connection": "close"}) from None

    @staticmethod
    def _json(route: Route, message: Any) -> Any:
        data = to_json(message)
        if route.response_body:
            field = message.DESCRIPTOR.fields_by_name[route.response_body]
            return data.get(field.json_name)
        return data

    @staticmethod
    def _answer(answer: CachedResponse, rid: str, cache: str | None) -> web.Response:
        headers = {"X-Request-Id": rid}
        if cache:
            headers["X-Cache"] = cache
        return web.Response(
            status=answer.status, body=answer.body, content_type=answer.content_type, headers=headers
        )

    async def _stream_ndjson(
        self,
        request: web.Request,
        route: Route,
        message: Any,
        deadline: float,
        metadata: list[tuple[str, str]],
        rid: str,
    ) -> web.StreamResponse:
        """NDJSON, headers sent with the first message so an early failure keeps its HTTP status."""
        response: web.StreamResponse | None = None
        try:
            async for item in self.upstream.stream(route, message, deadline=deadline, metadata=metadata):
                if response is None:
                    response = web.StreamResponse(headers={"Content-Type": NDJSON, "X-Request-Id": rid})
                    await response.prepare(request)
                await response.write(json.dumps(self._json(route, item)).encode() + b"\n")
        except MeshError as err:
            if response is None:
                raise
            failure = from_mesh_error(err)
            line = {"error": {"code": failure.code, "message": failure.message, "request_id": rid}}
            await response.write(json.dumps(line).encode() + b"\n")
        if response is None:
            response = web.StreamResponse(headers={"Content-Type": NDJSON, "X-Request-Id": rid})
            await response.prepare(request)
        await response.write_eof()
        return response

"""JWT bearer authentication (RFC 6750) with PyJWT: who is calling, and may they.

Tokens are verified against one configured key: an HS256 shared secret or an RS256
public key. ``exp`` and ``nbf`` are always checked when present (``exp`` is required),
``aud`` / ``iss`` when configured. Public routes accept a missing token but still
reject a bad one (Envoy's ``allow_missing``). Scopes come from the OAuth2 ``scope``
claim (space-separated) or a ``scp`` / ``scopes`` list.

Verifying a signature costs more than the rest of a request's gateway work, so a
verified token is remembered (bounded LRU) until its ``exp`` (+ leeway) or for at
most ``cache_seconds``, whichever is sooner; the cached principal is only ever
returned for the identical token string.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

import jwt

from grpcmesh.services.gateway.errors import GatewayError

__all__ = ["AuthConfig", "Authenticator", "Principal"]

_ALGORITHMS = ("HS256", "RS256")


@dataclass(frozen=True)
class AuthConfig:
    """How tokens are verified; ``key`` is the HS256 secret or the RS256 public key (PEM)."""

    algorithm: str = "HS256"
    key: str = ""
    audience: str | None = None
    issuer: str | None = None
    leeway: float = 0.0
    realm: str = "grpcmesh"

    def __post_init__(self) -> None:
        if self.algorithm not in _ALGORITHMS:
            raise ValueError(f"auth.algorithm must be one of {_ALGORITHMS}, got {self.algorithm!r}")
        if not self.key:
            raise ValueError("auth needs a key: an HS256 secret or an RS256 public key")
        if self.algorithm == "HS256" and len(self.key.encode()) < 32:
            raise ValueError("auth: an HS256 secret must be at least 32 bytes (RFC 7518 section 3.2)")


@dataclass(frozen=True)
class Principal:
    """An authenticated caller."""

    subject: str
    scopes: frozenset[str]
    claims: Mapping[str, Any]


def _scopes(claims: Mapping[str, Any]) -> frozenset[str]:
    raw = claims.get("scope", claims.get("scp", claims.get("scopes", ())))
    if isinstance(raw, str):
        return frozenset(raw.split())
    if isinstance(raw, list):
        return frozenset(str(s) for s in raw)
    return frozenset()


class Authenticator:
    """Turns an ``Authorization`` header into a :class:`Principal` or a 401/403."""

    def __init__(
        self,
        config: AuthConfig,
        clock: Callable[[], float] = time.time,
        cache_size: int = 4096,
        cache_seconds: float = 60.0,
    ) -> None:
        self.config = config
        options: Any = {"require": ["exp"]}
        self._options = options
        self._clock = clock
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds
        self._verified: OrderedDict[str, tuple[float, Principal]] = OrderedDict()

    def _challenge(self, error: str | None = None, description: str | None = None) -> dict[str, str]:
        parts = [f'realm="{self.config.realm}"']
        if error:
            parts.append(f'error="{error}"')
        if description:
            safe = description.replace('"', "'")
            parts.append(f'error_description="{safe}"')
        return {"WWW-Authenticate": "Bearer " + ", ".join(parts)}

    def _unauthenticated(self, message: str, error: str | None = None) -> GatewayError:
        return GatewayError(401, "UNAUTHENTICATED", message, headers=self._challenge(error, message))

    def verify(self, token: str) -> Principal:
        """The principal of a valid token; 401 naming the reason otherwise."""
        now = self._clock()
        known = self._verified.get(token)
        if known is not None:
            if now < known[0]:
                self._verified.move_to_end(token)
                return known[1]
            del self._verified[token]
        principal = self._decode(token)
        until = min(float(principal.claims["exp"]) + self.config.leeway, now + self._cache_seconds)
        self._verified[token] = (until, principal)
        if len(self._verified) > self._cache_size:
            self._verified.popitem(last=False)
        return principal

    def _decode(self, token: str) -> Principal:
        c = self.config
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                c.key,
                algorithms=[c.algorithm],
                audience=c.audience,
                issuer=c.issuer,
                leeway=c.leeway,
                options=self._options,
            )
        except jwt.InvalidTokenError as err:
            raise self._unauthenticated(f"invalid token: {err}", "invalid_token") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not subject:
            raise self._unauthenticated("invalid token: no subject (sub) claim", "invalid_token")
        return Principal(subject, _scopes(claims), claims)

    def authenticate(
        self, authorization: str | None, *, public: bool, scopes: Collection[str] = ()
    ) -> Principal | None:
        """The caller of a request; ``None`` only on a public route without a token."""
        if not authorization:
            if public:
                return None
            raise GatewayError(
                401, "UNAUTHENTICATED", "a bearer token is required", headers=self._challenge()
            )
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise self._unauthenticated("Authorization must be 'Bearer <token>'", "invalid_request")
        principal = self.verify(token.strip())
        missing = sorted(set(scopes) - principal.scopes)
        if missing:
            needed = " ".join(sorted(scopes))
            raise GatewayError(
                403,
                "PERMISSION_DENIED",
                f"token lacks scope {', '.join(missing)}",
                headers={"WWW-Authenticate": f'Bearer error="insufficient_scope", scope="{needed}"'},
            )
        return principal

"""JWT verification with PyJWT: HS256 and RS256, exp/nbf/aud/iss, scopes, public routes."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from grpcmesh.services.gateway.auth import AuthConfig, Authenticator
from grpcmesh.services.gateway.errors import GatewayError

SECRET = "0123456789abcdef0123456789abcdef-test-only"
AUTH = Authenticator(AuthConfig(key=SECRET, audience="grpcmesh", issuer="https://issuer.test"))


def token(key: Any = SECRET, algorithm: str = "HS256", **claims: Any) -> str:
    base = {"sub": "alice", "aud": "grpcmesh", "iss": "https://issuer.test", "exp": int(time.time()) + 300}
    base.update(claims)
    return jwt.encode({k: v for k, v in base.items() if v is not None}, key, algorithm=algorithm)


def bearer(t: str) -> str:
    return f"Bearer {t}"


def test_valid_token() -> None:
    principal = AUTH.authenticate(bearer(token(scope="events:read events:write")), public=False)
    assert principal is not None
    assert principal.subject == "alice"
    assert principal.scopes == {"events:read", "events:write"}


def _reject(header: str | None, **kw: Any) -> GatewayError:
    with pytest.raises(GatewayError) as caught:
        AUTH.authenticate(header, public=kw.pop("public", False), **kw)
    return caught.value


def test_missing_token_is_401_with_challenge() -> None:
    err = _reject(None)
    assert err.status == 401
    assert err.headers["WWW-Authenticate"] == 'Bearer realm="grpcmesh"'


# Headers are built when each test runs, not at collection: under load, a token minted at
# collection time can expire before its test is reached.
@pytest.mark.parametrize(
    ("make_header", "reason"),
    [
        (lambda: bearer(token(exp=int(time.time()) - 10)), "expired"),
        (lambda: bearer(token(nbf=int(time.time()) + 600)), "not yet valid"),
        (lambda: bearer(token(aud="someone-else")), "Audience"),
        (lambda: bearer(token(iss="https://evil.test")), "issuer"),
        (
            lambda: bearer(token(key="another-secret-that-is-long-enough-32b")),
            "Signature verification failed",
        ),
        (lambda: bearer(token(exp=None)), "exp"),
        (lambda: bearer(token(sub=None)), "subject"),
        (lambda: bearer("not.a.jwt"), "invalid token"),
        (lambda: "Basic YWxpY2U6cHc=", "Bearer <token>"),
        (lambda: "Bearer ", "Bearer <token>"),
    ],
)
def test_bad_tokens_are_401_naming_why(make_header: Callable[[], str], reason: str) -> None:
    err = _reject(make_header())
    assert err.status == 401
    assert reason in err.message
    assert 'error="invalid_' in err.headers["WWW-Authenticate"]


def test_alg_none_is_rejected() -> None:
    no_key: Any = None
    unsigned = jwt.encode({"sub": "alice", "exp": int(time.time()) + 60}, no_key, algorithm="none")
    assert _reject(bearer(unsigned)).status == 401


def test_missing_scope_is_403() -> None:
    err = _reject(bearer(token(scope="events:read")), scopes=["events:write"])
    assert err.status == 403
    assert "events:write" in err.message
    assert 'error="insufficient_scope"' in err.headers["WWW-Authenticate"]


def test_scope_list_claims() -> None:
    principal = AUTH.authenticate(bearer(token(scp=["a", "b"])), public=False, scopes=["a"])
    assert principal is not None
    assert principal.scopes == {"a", "b"}


def test_public_route_allows_missing_but_not_bad_tokens() -> None:
    assert AUTH.authenticate(None, public=True) is None
    assert _reject(bearer("garbage"), public=True).status == 401


def test_rs256_public_key() -> None:
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    public_pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    auth = Authenticator(AuthConfig(algorithm="RS256", key=public_pem))
    good = token(key=private, algorithm="RS256", aud=None, iss=None)
    principal = auth.authenticate(bearer(good), public=False)
    assert principal is not None
    assert principal.subject == "alice"
    # An HS256 token "signed" with the public key must not pass (algorithm confusion).
    with pytest.raises(GatewayError):
        auth.authenticate(bearer(token(key="x" * 40, aud=None, iss=None)), public=False)


@pytest.mark.parametrize(
    ("kwargs", "problem"),
    [
        ({"key": "short"}, "32 bytes"),
        ({"key": ""}, "needs a key"),
        ({"key": SECRET, "algorithm": "none"}, "one of"),
    ],
)
def test_bad_auth_config(kwargs: dict[str, Any], problem: str) -> None:
    with pytest.raises(ValueError, match=problem):
        AuthConfig(**kwargs)


class CountingAuthenticator(Authenticator):
    """Counts real signature checks (everything else is the real class)."""

    decodes = 0

    def _decode(self, token: str) -> Any:
        self.decodes += 1
        return super()._decode(token)


@pytest.mark.parametrize(("lifetime", "remembered_for"), [(30, 30), (3600, 60)])
def test_verified_tokens_are_remembered_until_exp_or_the_cap(lifetime: int, remembered_for: int) -> None:
    now = [float(int(time.time()))]
    config = AuthConfig(key=SECRET, audience="grpcmesh", issuer="https://issuer.test")
    auth = CountingAuthenticator(config, clock=lambda: now[0], cache_seconds=60)
    t = token(exp=int(now[0]) + lifetime)
    assert auth.verify(t).subject == "alice"
    now[0] += remembered_for - 1
    assert auth.verify(t).subject == "alice"
    assert auth.decodes == 1  # the second answer came from the cache
    now[0] += 1
    auth.verify(t)  # the entry lapsed (PyJWT's own wall clock still accepts the token)
    assert auth.decodes == 2


def test_token_cache_is_bounded() -> None:
    auth = Authenticator(
        AuthConfig(key=SECRET, audience="grpcmesh", issuer="https://issuer.test"), cache_size=2
    )
    for sub in ("a", "b", "c"):
        auth.verify(token(sub=sub))
    assert len(auth._verified) == 2

"""Authorization policy: which mesh identities may call which methods of a service.

Pure logic shared by the sidecar's inbound listener and the SDK's
:class:`~grpcmesh.sdk.server.Server` (when it serves TLS itself). A policy file
(TOML) holds one rule set per service::

    trust_domain = "grpcmesh.local"   # bare source names mean spiffe://<td>/service/<name>
    default = "deny"                  # services not listed below

    [services.orders]
    default = "deny"                  # allow | deny, when no rule matches
    mode = "enforce"                  # enforce | audit (log and count, let through)
    [[services.orders.rules]]
    name = "web-reads"
    sources = ["web", "spiffe://grpcmesh.local/service/batch-*"]   # exact ids or globs
    methods = ["/shop.v1.Orders/Get", "/shop.v1.Billing/*"]       # exact or a whole service

Rules only allow; a call no rule allows gets the rule set's default. Health
checks are always allowed (probes carry no identity worth checking), and so is
reflection by any mesh identity unless ``allow_reflection = false`` (calling
sidecars learn which methods are safe to retry from it). Decisions are cached
per (identity, path), so the hot path is one dict lookup.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "ALWAYS_ALLOWED",
    "Decision",
    "Policy",
    "PolicyError",
    "Rule",
    "RuleSet",
    "load_policy",
    "parse_policy",
]

DEFAULT_TRUST_DOMAIN = "grpcmesh.local"  # the same as grpcmesh.sdk.pki (kept free of cryptography)
ALWAYS_ALLOWED = frozenset({"/grpc.health.v1.Health/Check", "/grpc.health.v1.Health/Watch"})
REFLECTION = frozenset(
    {
        "/grpc.reflection.v1alpha.ServerReflection/ServerReflectionInfo",
        "/grpc.reflection.v1.ServerReflection/ServerReflectionInfo",
    }
)
_METHOD = re.compile(r"^(\*|/[A-Za-z_][\w.]*/(\*|[A-Za-z_]\w*))$")
_CACHE_LIMIT = 4096


class PolicyError(ValueError):
    """An invalid policy file; the message names the key."""


@dataclass(frozen=True)
class Decision:
    allowed: bool  # the call goes through (also true for a would-be denial in audit mode)
    denied: bool  # no rule allows it and the default is deny (counted and logged, even in audit)
    rule: str  # the rule that allowed it, or "default"
    ruleset: str  # e.g. "services.orders", named in the PERMISSION_DENIED message


@dataclass(frozen=True)
class Rule:
    name: str
    sources: tuple[str, ...]  # SPIFFE ids or globs of them
    methods: tuple[str, ...]  # /pkg.Service/Method, /pkg.Service/* or *

    def matches(self, identity: str, path: str) -> bool:
        return any(_method_matches(m, path) for m in self.methods) and any(
            fnmatch.fnmatchcase(identity, s) for s in self.sources
        )


def _method_matches(pattern: str, path: str) -> bool:
    if pattern == "*":
        return True
    if pattern.endswith("/*"):
        return path.startswith(pattern[:-1])
    return path == pattern


@dataclass(frozen=True)
class RuleSet:
    name: str
    default_allow: bool
    audit: bool
    rules: tuple[Rule, ...] = ()

    def decide(self, identity: str, path: str) -> Decision:
        """``identity`` is a spiffe:// id; anything else (no certificate) matches no rule, not even "*"."""
        if identity.startswith("spiffe://"):
            for rule in self.rules:
                if rule.matches(identity, path):
                    return Decision(True, False, rule.name, self.name)
        if self.default_allow:
            return Decision(True, False, "default", self.name)
        return Decision(self.audit, True, "default", self.name)


@dataclass(frozen=True)
class Policy:
    """One service's view of a policy file (a sidecar guards exactly one service)."""

    ruleset: RuleSet
    source: str = "<inline>"  # the file it came from, for messages
    allow_reflection: bool = True
    trust_domain: str = DEFAULT_TRUST_DOMAIN  # what bare source names expand to
    _cache: dict[tuple[str, str], Decision] = field(default_factory=dict, compare=False, repr=False)

    def decide(self, identity: str, path: str) -> Decision:
        key = (identity, path)
        hit = self._cache.get(key)
        if hit is not None:
            return hit
        if path in ALWAYS_ALLOWED or (self.allow_reflection and path in REFLECTION):
            decision = Decision(True, False, "always", self.ruleset.name)
        else:
            decision = self.ruleset.decide(identity, path)
        if len(self._cache) >= _CACHE_LIMIT:  # bounded: many identities x paths cannot grow it
            self._cache.clear()
        self._cache[key] = decision
        return decision

    def denial(self, identity: str, path: str) -> str:
        """The PERMISSION_DENIED message: who, what, and which rule set said no."""
        return (
            f"authorization: {identity} may not call {path} "
            f"(rule set [{self.ruleset.name}] in {self.source}: no rule allows it, default deny)"
        )

    def foreign_to(self, identity: str) -> bool:
        """True when ``identity`` (this service's own) lies outside the policy's trust domain, so
        bare names in the rules can never match a peer of the same CA."""
        return not identity.startswith(f"spiffe://{self.trust_domain}/")


def _choice(where: str, value: Any, options: tuple[str, ...]) -> str:
    if value not in options:
        raise PolicyError(f"{where}: must be one of {', '.join(options)} (got {value!r})")
    return str(value)


def _strings(where: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v for v in value):
        raise PolicyError(f"{where}: must be a non-empty list of strings")
    return tuple(value)


def _source(where: str, value: str, trust_domain: str) -> str:
    if "://" in value:
        if not value.startswith("spiffe://"):
            raise PolicyError(f"{where}: {value!r} is not a SPIFFE id (spiffe://<trust-domain>/...)")
        return value
    if "/" in value:
        raise PolicyError(f"{where}: {value!r} must be a service name or a spiffe:// id")
    return f"spiffe://{trust_domain}/service/{value}"


def _rule(where: str, raw: Any, index: int, trust_domain: str) -> Rule:
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(raw) - {"name", "sources", "methods"}
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}: unknown key (name, sources, methods)")
    sources = tuple(
        _source(f"{where}.sources", s, trust_domain) for s in _strings(f"{where}.sources", raw.get("sources"))
    )
    methods = _strings(f"{where}.methods", raw.get("methods"))
    for m in methods:
        if not _METHOD.match(m):
            raise PolicyError(f"{where}.methods: {m!r} must be /pkg.Service/Method, /pkg.Service/* or *")
    return Rule(str(raw.get("name") or f"rule {index + 1}"), sources, methods)


def parse_policy(data: Mapping[str, Any], service: str, source: str = "<inline>") -> Policy:
    """The rule set for ``service`` from parsed TOML (the file's ``default`` if it is not listed)."""
    unknown = set(data) - {"trust_domain", "default", "mode", "allow_reflection", "services"}
    if unknown:
        raise PolicyError(
            f"{sorted(unknown)[0]}: unknown key (trust_domain, default, mode, allow_reflection, services)"
        )
    td = data.get("trust_domain", DEFAULT_TRUST_DOMAIN)
    if not isinstance(td, str) or not td:
        raise PolicyError("trust_domain: must be a non-empty string")
    top_default = _choice("default", data.get("default", "deny"), ("allow", "deny"))
    top_mode = _choice("mode", data.get("mode", "enforce"), ("enforce", "audit"))
    reflection = data.get("allow_reflection", True)
    if not isinstance(reflection, bool):
        raise PolicyError("allow_reflection: must be true or false")
    services = data.get("services", {})
    if not isinstance(services, Mapping):
        raise PolicyError("services: must be a table of service names")
    fallback = RuleSet("default", top_default == "allow", top_mode == "audit")
    sets = {name: _ruleset(name, raw, td, top_default, top_mode) for name, raw in services.items()}
    return Policy(sets.get(service, fallback), source, reflection, td)  # all validated, one used


def _ruleset(service: str, raw: Any, td: str, top_default: str, top_mode: str) -> RuleSet:
    where = f"services.{service}"
    if not isinstance(raw, Mapping):
        raise PolicyError(f"{where}: must be a table")
    unknown = set(raw) - {"default", "mode", "rules"}
    if unknown:
        raise PolicyError(f"{where}.{sorted(unknown)[0]}: unknown key (default, mode, rules)")
    rules_raw = raw.get("rules", [])
    if not isinstance(rules_raw, list):
        raise PolicyError(f"{where}.rules: must be an array of tables ([[{where}.rules]])")
    rules = tuple(_rule(f"{where}.rules[{i}]", r, i, td) for i, r in enumerate(rules_raw))
    default = _choice(f"{where}.default", raw.get("default", top_default), ("allow", "deny"))
    mode = _choice(f"{where}.mode", raw.get("mode", top_mode), ("enforce", "audit"))
    return RuleSet(where, default == "allow", mode == "audit", rules)


def load_policy(path: str | Path, service: str) -> Policy:
    """Reads and validates a policy file; every mistake is a :class:`PolicyError` naming the key."""
    try:
        data = tomllib.loads(Path(path).read_text())
    except OSError as err:
        raise PolicyError(f"policy: cannot read {path}: {err.strerror}") from None
    except tomllib.TOMLDecodeError as err:
        raise PolicyError(f"policy: {path} is not valid TOML: {err}") from None
    return parse_policy(data, service, str(path))


def file_signature(path: str | Path) -> tuple[int, int, int] | None:
    """Changes whenever the file is rewritten or replaced (mtime, size, inode); None: missing."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_mtime_ns, st.st_size, st.st_ino


class PolicyFile:
    """A policy file re-read when it changes; a broken edit keeps the last good policy.

    Why keep it: a typo must neither open the service nor lock every caller out.
    """

    def __init__(self, path: str | Path, service: str) -> None:
        self.path = str(path)
        self.service = service
        self._sig = file_signature(path)
        self.policy = load_policy(path, service)  # a bad file at startup is fatal
        self.error: str | None = None

    def poll(self) -> bool | None:
        """True: a new policy is in force; False: unchanged; None: changed but invalid (see ``error``),
        reported once per bad state (later polls of the same bad file return False)."""
        sig = file_signature(self.path)
        if sig == self._sig:
            return False
        try:
            policy = load_policy(self.path, self.service)
        except PolicyError as err:
            first = self.error is None
            self.error = str(err)
            return None if first else False
        self.error = None
        self._sig = sig
        self.policy = policy
        return True

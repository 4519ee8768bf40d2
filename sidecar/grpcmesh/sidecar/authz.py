"""The inbound listener's authorization hook: a watched policy file and its metrics.

The caller's identity is the SPIFFE id in the URI SAN of its (verified)
client certificate, read once per connection. :meth:`InboundAuthz.check` runs
once per request before any upstream attempt and returns the
PERMISSION_DENIED message, or None to let the call through. The policy file is
re-read when it changes; a broken edit is logged and the last good policy
stays, so a typo never opens (or closes) the mesh.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

from prometheus_client import CollectorRegistry, Counter

from grpcmesh.sdk.authz import Policy, PolicyFile

__all__ = ["NO_SPIFFE_ID", "InboundAuthz", "spiffe_of"]

log = logging.getLogger("grpcmesh.sidecar.authz")

NO_SPIFFE_ID = "(no spiffe id)"  # a mesh certificate without a URI SAN: only "*" sources match it
_LABEL_LIMIT = 1000  # distinct (source, method) label pairs before methods collapse to "other"


def spiffe_of(peercert: Any) -> str:
    """The spiffe:// URI SAN of a verified peer certificate."""
    for kind, value in (peercert or {}).get("subjectAltName", ()):
        if kind == "URI" and str(value).startswith("spiffe://"):
            return str(value)
    return NO_SPIFFE_ID


class InboundAuthz:
    """Decides per request from the current policy; counts denials per source and method."""

    def __init__(
        self,
        path: str,
        service: str,
        registry: CollectorRegistry | None = None,
        own_identity: Callable[[], str] | None = None,
    ) -> None:
        self.file = PolicyFile(path, service)  # a bad file at startup is fatal
        self._own = own_identity
        self._labels: set[tuple[str, str]] = set()
        self.denied = Counter(
            "grpcmesh_authz_denied",
            "Calls no rule allowed, by source identity and method (mode=audit: let through)",
            ["source", "method", "mode"],
            registry=registry,
        )
        self.reloads = Counter(
            "grpcmesh_authz_policy_reloads", "Policy file reloads by result", ["result"], registry=registry
        )
        log.info("authz: policy %s loaded (rule set [%s])", path, self.policy.ruleset.name)
        self._check_trust_domain()

    @property
    def policy(self) -> Policy:
        return self.file.policy

    def identity(self, conn: Any) -> str:
        """The caller's SPIFFE id, read from its certificate once per connection (and kept on it)."""
        ident: str | None = conn.spiffe_id
        if ident is None:
            transport = conn.transport
            ident = spiffe_of(transport.get_extra_info("peercert") if transport is not None else None)
            conn.spiffe_id = ident
        return ident

    def check(self, conn: Any, path: str) -> str | None:
        """None: let the call through; else the PERMISSION_DENIED message."""
        identity = self.identity(conn)
        policy = self.policy
        decision = policy.decide(identity, path)
        if not decision.denied:
            return None
        mode = "audit" if decision.allowed else "enforce"
        label = (identity, path)
        if label not in self._labels:
            if len(self._labels) < _LABEL_LIMIT:
                self._labels.add(label)
                log.warning(
                    "authz %s: %s",
                    "AUDIT (let through)" if decision.allowed else "denied",
                    policy.denial(identity, path),
                )
            else:
                label = (identity, "other")
        self.denied.labels(label[0], label[1], mode).inc()
        return None if decision.allowed else policy.denial(identity, path)

    def _check_trust_domain(self) -> None:
        """A policy for another trust domain than our certificate's silently denies every peer."""
        own = self._own() if self._own is not None else ""
        if own and self.policy.foreign_to(own):
            log.warning(
                "authz: policy trust_domain %r does not match this sidecar's certificate (%s): "
                "bare source names will match no peer; set trust_domain in %s",
                self.policy.trust_domain,
                own,
                self.file.path,
            )

    def poll(self) -> bool:
        """Reloads the policy if its file changed; True when a new policy is in force."""
        result = self.file.poll()
        if result is None:
            log.error("authz: %s; keeping the previous policy", self.file.error)
            self.reloads.labels("error").inc()
        elif result:
            self.reloads.labels("ok").inc()
            log.info("authz: policy %s reloaded (rule set [%s])", self.file.path, self.policy.ruleset.name)
            self._check_trust_domain()
        return bool(result)

    async def watch(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            self.poll()

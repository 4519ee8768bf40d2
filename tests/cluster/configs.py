"""The shipped deploy/ files, with only names, addresses and file paths filled in.

The cluster tests run what a user copies: ``deploy/consul/server.hcl`` on each Consul
server, ``deploy/consul/agent.hcl`` on each application host and ``deploy/sidecar.toml``
for each sidecar. Per-machine values that a file cannot know (the node name, the
data directory, which service a sidecar fronts, where its certificates are) are
filled in here; every substitution must match exactly once, so a change to a shipped
file that breaks the harness's assumptions fails loudly rather than silently testing
something else.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DEPLOY", "Slot", "agent_argv", "sidecar_toml"]

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"


def agent_argv(consul: str, role: str, node: str, data_dir: Path) -> list[str]:
    """``consul agent`` with the shipped ``server.hcl`` or ``agent.hcl``, naming the node and its data dir.

    Flags win over the file (Consul's precedence), so the file stays untouched.
    """
    config = DEPLOY / "consul" / ("server.hcl" if role == "server" else "agent.hcl")
    return [consul, "agent", f"-config-file={config}", f"-node={node}", f"-data-dir={data_dir}"]


def _sub(text: str, pattern: str, replacement: str) -> str:
    out, count = re.subn(pattern, lambda _: replacement, text, flags=re.MULTILINE)
    if count != 1:
        raise AssertionError(f"deploy/sidecar.toml: expected one line matching {pattern!r}, found {count}")
    return out


@dataclass(frozen=True)
class Slot:
    """Ports of the ``n``-th app + sidecar pair on one host; slot 0 keeps the shipped file's."""

    n: int = 0

    @property
    def app(self) -> int:
        return 50051 + self.n

    @property
    def inbound(self) -> int:
        return 15000 + 10 * self.n

    @property
    def outbound(self) -> int:
        return 15001 + 10 * self.n

    @property
    def admin(self) -> int:
        return 15090 + self.n


FIRST = Slot()


def sidecar_toml(service: str, tls: tuple[Path, Path, Path] | None = None, slot: Slot = FIRST) -> str:
    """deploy/sidecar.toml for ``service``; ``tls`` = (cert, key, bundle) turns its [tls] block on.

    A second pair on the same host (``slot``) gets its own addresses, as on a real machine.
    """
    text = (DEPLOY / "sidecar.toml").read_text()
    text = _sub(text, r'^service = "[^"]*"', f"service = {_q(service)}")
    if slot.n:
        text = _sub(text, r'^app = "127.0.0.1:50051"', f'app = "127.0.0.1:{slot.app}"')
        text = _sub(text, r'^outbound = "127.0.0.1:15001"', f'outbound = "127.0.0.1:{slot.outbound}"')
        text = _sub(text, r'^inbound = "0.0.0.0:15000"', f'inbound = "0.0.0.0:{slot.inbound}"')
        text = _sub(text, r'^admin = "127.0.0.1:15090"', f'admin = "127.0.0.1:{slot.admin}"')
    if tls is not None:
        cert, key, bundle = tls
        text = _sub(text, r"^# \[tls\]$", "[tls]")
        text = _sub(text, r'^# cert_file = "[^"]*"', f"cert_file = {_q(str(cert))}")
        text = _sub(text, r'^# key_file = "[^"]*"', f"key_file = {_q(str(key))}")
        text = _sub(text, r'^# ca_file = "[^"]*"', f"ca_file = {_q(str(bundle))}")
        text = _sub(text, r"^# require = true", "require = true")
    return text


def _q(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'

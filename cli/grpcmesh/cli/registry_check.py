"""Startup check of a registry file: a command must not come up "ready" with no endpoints by mistake.

The resolvers themselves tolerate a missing or malformed file (they keep the last
good endpoints and pick the file up when it appears), which is right while running
but hides a typo at startup. So every command that takes a registry checks it
once here: a file that is named explicitly but missing, or that does not parse,
is a one-line error unless the user asked to start empty.
"""

from __future__ import annotations

import logging
from pathlib import Path

from grpcmesh.cli.errors import CommandError
from grpcmesh.sdk.discovery import DEFAULT_REGISTRY_FILE, RegistryFileError, registry_file
from grpcmesh.sdk.discovery.static import parse_registry

__all__ = ["check_registry"]

log = logging.getLogger("grpcmesh.cli")


def check_registry(url: str | None, *, allow_empty: bool = False) -> None:
    """Raises :class:`CommandError` when the registry file ``url`` names cannot be used now."""
    name = registry_file(url)
    if name is None:  # Consul: reachable or not, the resolver retries and serves the last answer
        return
    path = Path(name)
    if not path.is_file():
        if path.exists():
            problem = f"registry {name}: not a file"
        elif name == DEFAULT_REGISTRY_FILE:
            log.warning("no registry file ./%s yet: no endpoints until it appears", name)
            return
        else:
            problem = f"registry {name}: no such file"
    else:
        try:
            parse_registry(path, path.read_text(encoding="utf-8"))
            return
        except (RegistryFileError, OSError, UnicodeDecodeError) as err:
            problem = str(err) if isinstance(err, RegistryFileError) else f"registry {name}: {err}"
    if not allow_empty:
        raise CommandError(f"{problem} (--allow-empty-registry starts without it)")
    log.warning("%s; starting with an empty registry", problem)

"""Where each config value came from (file:line, env var, flag), so an error can say so.

Three layers feed a command's config (the sidecar's; the gateway reads the file layer): the TOML file, the
environment and flags. Config overrides in the environment live under their own
prefix, ``GRPCMESH_CFG__SECTION__KEY``, so they can never collide with the plain
``GRPCMESH_*`` settings every command shares (``GRPCMESH_REGISTRY``,
``GRPCMESH_SIDECAR``, ``GRPCMESH_DISCOVERY``, ...). The old form
``GRPCMESH_<FIELD>`` still works for the sidecar's own field names, with a
deprecation warning; any other ``GRPCMESH_*`` variable is not a config key.

Each layer records ``dotted.key -> origin`` (``orders.toml:12``, ``env
GRPCMESH_CFG__MAX_CONCURRENCY``, ``flag --max-concurrency``) and :func:`locate`
appends the origin of the key an error message starts with.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["CFG_PREFIX", "LEGACY_PREFIX", "Origins", "env_layer", "locate", "toml_origins"]

log = logging.getLogger("grpcmesh.config")

CFG_PREFIX = "GRPCMESH_CFG__"
LEGACY_PREFIX = "GRPCMESH_"

Origins = dict[str, str]

_HEADER = re.compile(r"^\s*\[\[?\s*([^\]]+?)\s*\]\]?\s*(#.*)?$")
_KEY = re.compile(
    r'^\s*((?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+)(?:\s*\.\s*(?:"[^"]*"|\'[^\']*\'|[A-Za-z0-9_-]+))*)\s*='
)


def _dotted(text: str) -> str:
    return ".".join(part.strip().strip("\"'") for part in re.findall(r'"[^"]*"|\'[^\']*\'|[^.]+', text))


def toml_origins(path: str, text: str) -> Origins:
    """``dotted.key -> path:line`` for every ``key = value`` line (and table header) of a TOML file."""
    out: Origins = {}
    table = ""
    for number, line in enumerate(text.splitlines(), start=1):
        header = _HEADER.match(line)
        if header:
            table = _dotted(header.group(1))
            out.setdefault(table, f"{path}:{number}")
            continue
        key = _KEY.match(line)
        if key:
            full = _dotted(key.group(1))
            out.setdefault(f"{table}.{full}" if table else full, f"{path}:{number}")
    return out


def env_layer(environ: Mapping[str, str], fields: Iterable[str]) -> tuple[dict[str, Any], Origins]:
    """Config keys set in the environment: ``GRPCMESH_CFG__TRACING__SAMPLE_RATIO`` -> tracing.sample_ratio.

    ``GRPCMESH_<FIELD>[__SUB]`` still counts when FIELD is one of ``fields`` (deprecated).
    """
    known = set(fields)
    layer: dict[str, Any] = {}
    origins: Origins = {}
    for name, value in sorted(environ.items()):
        if name.startswith(CFG_PREFIX):
            path = name[len(CFG_PREFIX) :].lower().split("__")
        elif name.startswith(LEGACY_PREFIX) and name[len(LEGACY_PREFIX) :].lower().split("__")[0] in known:
            path = name[len(LEGACY_PREFIX) :].lower().split("__")
            log.warning("%s is deprecated: use %s%s", name, CFG_PREFIX, name[len(LEGACY_PREFIX) :])
        else:
            continue  # a plain GRPCMESH_* setting (GRPCMESH_REGISTRY, GRPCMESH_SIDECAR, ...), not config
        node = layer
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
        origins[".".join(path)] = f"env {name}"
    return layer, origins


def locate(message: str, origins: Mapping[str, str]) -> str:
    """``message`` plus ``(from ORIGIN)`` for the dotted key it starts with, when one is known."""
    key = message.split(":", 1)[0].strip()
    key = re.sub(r"\[\d+\]", "", key)
    best = ""
    for candidate in origins:
        if (key == candidate or key.startswith(candidate + ".")) and len(candidate) > len(best):
            best = candidate
    if not best:
        best = next((c for c in origins if c.startswith(key + ".")), "")
    return f"{message} (from {origins[best]})" if best else message

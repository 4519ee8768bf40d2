"""The one parser of ``host:port`` strings (flags, config files, discovery maps).

Every edge that takes an address agrees on the same rules: IPv6 hosts in
brackets, a port in range, a host present unless a default is given. Errors
are ``ValueError`` with a short reason that the caller prefixes with the field.
"""

from __future__ import annotations

__all__ = ["split_host_port"]


def split_host_port(value: str, *, min_port: int = 1, default_host: str | None = None) -> tuple[str, int]:
    """``host:port`` or ``[v6]:port`` → (host without brackets, port).

    ``min_port=0`` accepts port 0 (a listener that picks a free port);
    ``default_host`` stands in for an empty host (``:8080``).
    """
    host, sep, port = value.strip().rpartition(":")
    if not sep:
        raise ValueError("missing port")
    if not host:
        if default_host is None:
            raise ValueError("missing host")
        host = default_host
    if host.startswith("[") and host.endswith("]"):
        host = host[1:-1]
    elif ":" in host:
        raise ValueError("put IPv6 hosts in brackets, e.g. [::1]:15001")
    if not port.isdigit() or not min_port <= int(port) <= 65535:
        raise ValueError(f"port must be a number in {min_port}..65535, got {port!r}")
    return host, int(port)

"""Service discovery: a ``Resolver`` protocol and its implementations.

Policies (balancers, the sidecar's router) depend only on :class:`Resolver`
and :class:`Endpoint`; which registry answers is chosen once at the edge, by
:func:`resolver_from_url`:

=================================  ==========================================
``consul://host:port``             :class:`ConsulResolver` at ``http://host:port``
``http://…`` / ``https://…``       :class:`ConsulResolver` at that address
``host:port`` (no scheme)          :class:`ConsulResolver` at ``http://host:port``
``file:///abs`` / ``file://rel``   :class:`StaticResolver` over that file
or a plain path
``None`` / ``""``                  :class:`StaticResolver` over ``$GRPCMESH_REGISTRY``,
                                   else ``./grpcmesh-registry.toml`` (a missing
                                   file is an empty registry until it appears)
=================================  ==========================================

Consul URLs may carry query parameters naming any :class:`ConsulSettings` field
(``?dc=…&tag=…&wait=…&token=…&max_reads=…&max_services=…&idle_ttl=…&resync=…``);
an unknown one is an error. One resolver serves the sidecar, the SDK's direct
mode and the gateway (all three build theirs here), so all three scale alike.
"""

from __future__ import annotations

import os
import re
import urllib.parse

from grpcmesh.sdk.discovery.base import Endpoint, Resolution, ResolveError, Resolver, require_endpoints
from grpcmesh.sdk.discovery.consul import ConsulResolver
from grpcmesh.sdk.discovery.consul_settings import ConsulSettings
from grpcmesh.sdk.discovery.memory import MemoryResolver
from grpcmesh.sdk.discovery.static import RegistryFileError, StaticResolver

__all__ = [
    "DEFAULT_REGISTRY_FILE",
    "ConsulResolver",
    "ConsulSettings",
    "Endpoint",
    "MemoryResolver",
    "RegistryFileError",
    "Resolution",
    "ResolveError",
    "Resolver",
    "StaticResolver",
    "registry_file",
    "require_endpoints",
    "resolver_from_url",
]

DEFAULT_REGISTRY_FILE = "grpcmesh-registry.toml"
_HOST_PORT = re.compile(r"^[A-Za-z0-9.\-]+:\d{1,5}(\?.*)?$")


def registry_file(url: str | None) -> str | None:
    """The file a registry address names (``file:///abs``, ``file://rel``, a path), else ``None``.

    ``None`` / ``""`` name the default file: ``$GRPCMESH_REGISTRY``, else
    ``./grpcmesh-registry.toml``.
    """
    if not url:
        return os.environ.get("GRPCMESH_REGISTRY") or DEFAULT_REGISTRY_FILE
    if _HOST_PORT.match(url):
        return None
    parts = urllib.parse.urlsplit(url)
    if parts.scheme == "file":  # file://registry.toml puts the name in netloc: keep it relative
        host = "" if parts.netloc == "localhost" else parts.netloc
        return urllib.parse.unquote(host + parts.path)
    if parts.scheme and len(parts.scheme) > 1:  # one letter: a Windows drive, i.e. a path
        return None
    return url


def resolver_from_url(url: str | None) -> Resolver:
    """The resolver a registry address names (see the module docstring for the forms)."""
    path = registry_file(url)
    if path is not None:
        return StaticResolver(path)
    assert url is not None
    if _HOST_PORT.match(url):
        url = f"consul://{url}"
    parts = urllib.parse.urlsplit(url)
    if parts.scheme in ("consul", "http", "https"):
        if not parts.netloc:
            raise ValueError(f"registry URL {url!r}: missing host:port")
        scheme = "http" if parts.scheme == "consul" else parts.scheme
        settings = ConsulSettings.from_query(dict(urllib.parse.parse_qsl(parts.query)))
        return ConsulResolver(f"{scheme}://{parts.netloc}", settings)
    raise ValueError(f"registry URL {url!r}: unknown scheme {parts.scheme!r} (consul, http(s), file)")

"""The SDK's public surface is exactly what the docs list, and every public name is documented."""

from __future__ import annotations

import importlib
import inspect

import pytest

import grpcmesh.sdk

# The documented surface (README "Use the SDK" lists the same names).
DOCUMENTED = {
    # clients
    "AsyncMeshClient",
    "MeshClient",
    "ClientConfig",
    "ClientClosedError",
    "RetryConfig",
    # servers
    "Server",
    "Servicer",
    "serve",
    # context and logs
    "current_request_id",
    "configure_logging",
    # errors: typed exceptions and rich-status helpers
    "MeshError",
    "Aborted",
    "AlreadyExists",
    "Cancelled",
    "DeadlineExceeded",
    "FailedPrecondition",
    "Internal",
    "InvalidArgument",
    "NotFound",
    "PermissionDenied",
    "ResourceExhausted",
    "Unauthenticated",
    "Unavailable",
    "Unimplemented",
    "Unknown",
    "bad_request",
    "error_info",
    "from_rpc_error",
    "rich_status",
}

# Modules built for the client/server surface: every public name and method has a docstring.
MODULES = [
    "grpcmesh.sdk",
    "grpcmesh.sdk.client",
    "grpcmesh.sdk.client_config",
    "grpcmesh.sdk.channel",
    "grpcmesh.sdk.calls",
    "grpcmesh.sdk.direct",
    "grpcmesh.sdk.sync",
    "grpcmesh.sdk.logging",
    "grpcmesh.sdk.server",
    "grpcmesh.sdk.interceptors",
    "grpcmesh.sdk.interceptors.base",
    "grpcmesh.sdk.interceptors.context",
    "grpcmesh.sdk.interceptors.deadline",
    "grpcmesh.sdk.interceptors.errors",
    "grpcmesh.sdk.interceptors.request_id",
    "grpcmesh.sdk.interceptors.retry",
    "grpcmesh.sdk.interceptors.trace",
]


def test_all_equals_the_documented_surface() -> None:
    assert set(grpcmesh.sdk.__all__) == DOCUMENTED
    assert len(grpcmesh.sdk.__all__) == len(DOCUMENTED), "duplicates in __all__"
    for name in grpcmesh.sdk.__all__:
        assert hasattr(grpcmesh.sdk, name), name


@pytest.mark.parametrize("module_name", MODULES)
def test_every_public_name_is_documented(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert inspect.getdoc(module), f"{module_name} has no module docstring"
    missing = []
    for name in getattr(module, "__all__", ()):
        obj = getattr(module, name)
        if inspect.isclass(obj) or inspect.isfunction(obj):
            if not inspect.getdoc(obj):
                missing.append(name)
            if inspect.isclass(obj) and obj.__module__ == module_name:
                fields = getattr(obj, "__dataclass_fields__", {})
                for attr, value in vars(obj).items():
                    if attr.startswith("_") or attr in fields:
                        continue
                    if not callable(value) and not isinstance(value, property):
                        continue
                    if not inspect.getdoc(value):
                        missing.append(f"{name}.{attr}")
    assert not missing, f"{module_name}: undocumented public names {missing}"

"""Loads the application module a bus runs: ``--app`` names it, an attribute returns its parts."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

__all__ = ["DEFAULT_APP", "load_app"]

DEFAULT_APP = "grpcmesh.services.examples.orders"


def load_app(name: str, attribute: str) -> Callable[[], Iterable[object]]:
    module = importlib.import_module(name)
    factory = getattr(module, attribute, None)
    if factory is None:
        raise ValueError(f"application module {name!r} has no {attribute}()")
    built: Callable[[], Iterable[object]] = factory
    return built

"""Loads the application module a bus runs: ``--app`` names it, an attribute returns its parts."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable

__all__ = ["DEFAULT_APP", "load_app"]

DEFAULT_APP = "grpcmesh.services.examples.orders"


def load_app(name: str, attribute: str) -> Callable[[], Iterable[object]]:
    try:
        module = importlib.import_module(name)
    except ImportError as err:  # a typo in --app: say which flag, not a traceback
        raise ValueError(f"--app {name!r}: cannot import it ({err})") from None
    factory = getattr(module, attribute, None)
    if factory is None:
        raise ValueError(f"application module {name!r} has no {attribute}()")
    built: Callable[[], Iterable[object]] = factory
    return built

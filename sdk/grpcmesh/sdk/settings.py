"""Typed settings from plain tables: TOML / env / flag dicts → frozen dataclasses.

The sidecar's config and the SDK client's reading of the same file both build
their dataclasses here, so a key is coerced and validated the same way on both
sides and an error always starts with the offending key
(``cluster.retry.max_attempts: must be >= 1``).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Callable, Mapping
from typing import Any

import grpc

__all__ = ["ConfigError", "Special", "build_dataclass"]


class ConfigError(ValueError):
    """Invalid configuration; the message starts with the offending key."""


# (class, key, raw value, dotted key) → a converted value, or None for the generic coercion
Special = Callable[[type[Any], str, Any, str], Any]


def _coerce(tp: Any, value: Any, key: str) -> Any:
    origin = typing.get_origin(tp)
    if origin in (types.UnionType, typing.Union):
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        if value is None:
            return None
        return _coerce(args[0], value, key)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, Mapping):
            raise ConfigError(f"{key}: expected a table")
        return build_dataclass(tp, value, key)
    if tp is bool:
        if isinstance(value, str) and value.lower() in ("1", "true", "yes", "on", "0", "false", "no", "off"):
            return value.lower() in ("1", "true", "yes", "on")
        if not isinstance(value, bool):
            raise ConfigError(f"{key}: expected true/false, got {value!r}")
        return value
    if tp in (int, float):
        if isinstance(value, bool):
            raise ConfigError(f"{key}: expected a number, got {value!r}")
        try:
            return tp(value)
        except (TypeError, ValueError):
            raise ConfigError(f"{key}: expected {tp.__name__}, got {value!r}") from None
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{key}: expected a string, got {value!r}")
        return value
    if origin is frozenset and typing.get_args(tp) == (grpc.StatusCode,):
        names = value.split(",") if isinstance(value, str) else value
        try:
            return frozenset(grpc.StatusCode[str(n).strip().upper()] for n in names)
        except KeyError as err:
            raise ConfigError(f"{key}: unknown status code {err.args[0]}") from None
    if origin is tuple:
        return tuple(value) if not isinstance(value, str) else (value,)
    return value


def build_dataclass(
    cls: type[Any], data: Mapping[str, Any], prefix: str = "", *, special: Special | None = None
) -> Any:
    """``cls(**data)`` with every value coerced to its field's type; ``special`` handles odd fields.

    Unknown keys and the dataclass's own ``__post_init__`` ValueErrors become
    :class:`ConfigError` naming the dotted key.
    """
    hints = typing.get_type_hints(cls)
    names = {f.name for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        full = f"{prefix}.{key}" if prefix else key
        if key not in names:
            raise ConfigError(f"{full}: unknown key (valid: {', '.join(sorted(names))})")
        converted = special(cls, key, value, full) if special else None
        kwargs[key] = converted or _coerce(hints[key], value, full)
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{prefix or 'config'}: {err}") from None
    except ValueError as err:
        if isinstance(err, ConfigError):
            raise
        msg = str(err)
        token = re.split(r"[ :]", msg, maxsplit=1)[0]
        name = token.split(".")[-1]
        if name in names:
            msg = f"{prefix + '.' if prefix else ''}{name}:{msg[len(token) :].lstrip(':')}"
        elif prefix:
            msg = f"{prefix}: {msg}"
        raise ConfigError(msg) from None

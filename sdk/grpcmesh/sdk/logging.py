"""Structured logs that carry the request id and trace id of the call being served.

:class:`ContextFilter` stamps every record with ``request_id``, ``trace_id`` and
``span_id`` from the current context (set by the server context interceptor),
and :class:`JsonFormatter` writes one JSON object per line including any
``extra=`` fields, so logs from all hops of a request can be joined on either id.

The access log (logger ``grpcmesh.access``: one line per served call) is off unless
``GRPCMESH_ACCESS_LOG=1`` (or :func:`set_access_log`), as in Envoy: a line per call costs
a service several percent of its CPU (8 % of the command bus's, profiled).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import IO, Any

from opentelemetry import trace

from grpcmesh.sdk.headers import request_id_var

__all__ = ["ACCESS_LOG", "ContextFilter", "JsonFormatter", "configure_logging", "set_access_log"]

ACCESS_LOG = "grpcmesh.access"

_STANDARD = set(logging.LogRecord("", 0, "", 0, "", (), None).__dict__) | {"message", "asctime"}
_CONTEXT_FIELDS = ("request_id", "trace_id", "span_id")


class ContextFilter(logging.Filter):
    """Adds ``request_id``, ``trace_id`` and ``span_id`` (empty when absent) to each record."""

    def filter(self, record: logging.LogRecord) -> bool:
        """Stamps the record; never drops it."""
        if not getattr(record, "request_id", None):
            record.request_id = request_id_var.get() or ""
        ctx = trace.get_current_span().get_span_context()
        if not getattr(record, "trace_id", None):
            record.trace_id = format(ctx.trace_id, "032x") if ctx.is_valid else ""
        if not getattr(record, "span_id", None):
            record.span_id = format(ctx.span_id, "016x") if ctx.is_valid else ""
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (UTC), level, logger, message, context ids, extras."""

    def format(self, record: logging.LogRecord) -> str:
        """Serialises ``record``; values that are not JSON become strings."""
        doc: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "msg": record.getMessage(),
        }
        for key in _CONTEXT_FIELDS:
            value = getattr(record, key, "")
            if value:
                doc[key] = value
        for key, value in record.__dict__.items():
            if key not in _STANDARD and key not in _CONTEXT_FIELDS and not key.startswith("_"):
                doc[key] = value
        if record.exc_info:
            doc["exc"] = self.formatException(record.exc_info)
        return json.dumps(doc, default=str)


def set_access_log(enabled: bool | None = None) -> bool:
    """Turns the per-call access log on or off (``None``: as ``GRPCMESH_ACCESS_LOG`` says, off
    by default); returns whether it is on."""
    if enabled is None:
        enabled = os.environ.get("GRPCMESH_ACCESS_LOG", "").lower() in ("1", "true", "yes", "on")
    logging.getLogger(ACCESS_LOG).setLevel(logging.INFO if enabled else logging.WARNING)
    return enabled


def configure_logging(
    level: int = logging.INFO, *, json_lines: bool = True, stream: IO[str] | None = None
) -> logging.Handler:
    """Installs one context-aware handler on the root logger (idempotent) and returns it; the
    access log follows ``GRPCMESH_ACCESS_LOG`` (:func:`set_access_log`)."""
    set_access_log()
    root = logging.getLogger()
    for existing in root.handlers:
        if getattr(existing, "_grpcmesh", False):
            root.setLevel(level)
            return existing
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(ContextFilter())
    handler.setFormatter(
        JsonFormatter()
        if json_lines
        else logging.Formatter("%(asctime)s %(levelname)s %(name)s [%(request_id)s %(trace_id)s] %(message)s")
    )
    handler._grpcmesh = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(level)
    return handler

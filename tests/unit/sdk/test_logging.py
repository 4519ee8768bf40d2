"""Structured logs: the context filter stamps ids, the JSON formatter keeps extras."""

from __future__ import annotations

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import TracerProvider

from grpcmesh.sdk.headers import request_id_var
from grpcmesh.sdk.logging import ACCESS_LOG, ContextFilter, JsonFormatter, configure_logging, set_access_log


def test_json_line_carries_request_id_trace_id_and_extras() -> None:
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    logger = logging.getLogger("tests.sdk.logging")
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    tracer = TracerProvider().get_tracer("t")
    token = request_id_var.set("rid-log")
    try:
        with tracer.start_as_current_span("op") as span:
            logger.info("paid %s", "order-1", extra={"amount": 5})
            trace_id = format(span.get_span_context().trace_id, "032x")
        logger.info("outside")
    finally:
        request_id_var.reset(token)
        logger.removeHandler(handler)
    first, second = (json.loads(line) for line in stream.getvalue().splitlines())
    assert first["msg"] == "paid order-1"
    assert first["request_id"] == "rid-log"
    assert first["trace_id"] == trace_id
    assert first["amount"] == 5
    assert first["level"] == "INFO"
    assert first["ts"].endswith("Z")
    assert "trace_id" not in second


def test_configure_logging_is_idempotent() -> None:
    root = logging.getLogger()
    before = list(root.handlers)
    level = root.level
    try:
        first = configure_logging(stream=io.StringIO())
        assert configure_logging() is first
        assert len(root.handlers) == len(before) + 1
    finally:
        root.handlers = before
        root.setLevel(level)


def test_the_access_log_is_off_unless_asked_for(monkeypatch: pytest.MonkeyPatch) -> None:
    access = logging.getLogger(ACCESS_LOG)
    level = access.level
    try:
        monkeypatch.delenv("GRPCMESH_ACCESS_LOG", raising=False)
        assert set_access_log() is False
        assert not access.isEnabledFor(logging.INFO)
        monkeypatch.setenv("GRPCMESH_ACCESS_LOG", "1")
        assert set_access_log() is True
        assert access.isEnabledFor(logging.INFO)
        assert set_access_log(False) is False
        assert not access.isEnabledFor(logging.INFO)
    finally:
        access.setLevel(level)

"""Why a bus refused a request, as plain data: a status code name, a message, the fields.

Pure (no gRPC import) so the dispatch and query logic can be unit-tested; the
services turn a :class:`Rejected` into a rich gRPC status at the edge.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["Rejected", "invalid"]


class Rejected(Exception):
    """``code`` is a grpc.StatusCode name; ``violations`` (field → why) become a BadRequest."""

    def __init__(
        self,
        code: str,
        message: str,
        *,
        violations: Mapping[str, str] | None = None,
        reason: str = "",
        metadata: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.violations = dict(violations or {})
        self.reason = reason
        self.metadata = dict(metadata or {})


def invalid(violations: Mapping[str, str]) -> Rejected:
    """INVALID_ARGUMENT naming every bad field in the message and the BadRequest detail."""
    text = "; ".join(f"{f}: {why}" for f, why in violations.items())
    return Rejected("INVALID_ARGUMENT", f"invalid request: {text}", violations=violations)

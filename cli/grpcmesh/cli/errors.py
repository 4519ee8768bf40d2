"""The one exception a subcommand raises for a mistake the user can fix."""

from __future__ import annotations

__all__ = ["CommandError"]


class CommandError(Exception):
    """A user-facing failure: printed without a traceback, exit status 1."""

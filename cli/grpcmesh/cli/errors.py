"""The one exception a subcommand raises for a mistake the user can fix, and its exit status."""

from __future__ import annotations

__all__ = ["USAGE_ERROR", "CommandError"]

USAGE_ERROR = 2
"""Exit status of every usage, configuration or startup error (argparse uses 2 as well)."""


class CommandError(Exception):
    """A user-facing failure: printed as one line without a traceback, exit status 2."""

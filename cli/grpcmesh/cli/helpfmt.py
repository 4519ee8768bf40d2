"""Uniform ``--help`` for every subcommand, whoever declared it.

Applied once to the finished parser tree (built-ins and plugins alike): each
subcommand gets its one-line help as its description when it has none, shows
the default of every option that has one, and remembers itself so an unknown
flag is reported with that subcommand's usage rather than the top-level one.
"""

from __future__ import annotations

import argparse

__all__ = ["DefaultsFormatter", "polish"]


class DefaultsFormatter(argparse.HelpFormatter):
    """Appends ``(default: X)`` to an option's help unless it has no default or already says one."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        default = action.default
        shown = default not in (None, False, [], argparse.SUPPRESS) and "default" not in text.lower()
        if shown and (action.option_strings or action.nargs in ("?", "*")):
            text = f"{text} (default: %(default)s)" if text else "default: %(default)s"
        return text


def polish(parser: argparse.ArgumentParser) -> None:
    """Descriptions, defaults and usage-on-error for every subparser below ``parser``."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        helps = {choice.dest: choice.help for choice in action._choices_actions}
        for name, sub in action.choices.items():
            sub.formatter_class = DefaultsFormatter
            if not sub.description:
                sub.description = helps.get(name)
            sub.set_defaults(_parser=sub)
            polish(sub)

"""Subcommands come from the ``grpcmesh.commands`` entry-point group, so a package can add one."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from grpcmesh.cli.errors import CommandError
from grpcmesh.cli.main import GROUP, build_parser, commands, main

BUILT_IN = {"commandbus", "demo", "eventstore", "gateway", "proto", "querybus", "saga", "sidecar", "traces"}


def add_parser(sub: Any) -> None:
    """A third-party subcommand, as another package would declare it."""
    p = sub.add_parser("hello", help="say hello")
    p.add_argument("--name", default="mesh")
    p.set_defaults(func=_hello)


def _hello(args: argparse.Namespace) -> int:
    if args.name == "":
        raise CommandError("--name: must not be empty")
    print(f"hello {args.name}")
    return 0


PLUGIN = EntryPoint(name="hello", value=f"{__name__}:add_parser", group=GROUP)


def test_every_built_in_command_is_an_installed_entry_point() -> None:
    assert {ep.name for ep in commands()} >= BUILT_IN


def test_a_package_adds_a_command_through_an_entry_point(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser([*commands(), PLUGIN])
    args = parser.parse_args(["hello", "--name", "orders"])
    assert args.func(args) == 0
    assert capsys.readouterr().out == "hello orders\n"
    assert parser.parse_args(["eventstore", "--port", "0"]).port == 0  # built-ins still there


def test_a_command_error_is_one_line_and_status_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["hello", "--name", ""], [PLUGIN]) == 2
    assert capsys.readouterr().err == "grpcmesh hello: --name: must not be empty\n"


def test_a_plugin_cannot_shadow_a_built_in_command() -> None:
    shadow = EntryPoint(name="eventstore", value=f"{__name__}:add_parser", group=GROUP)
    chosen = {ep.name: ep.value for ep in commands([shadow, *commands()])}
    assert chosen["eventstore"] == "grpcmesh.cli.commands.eventstore:add_parser"

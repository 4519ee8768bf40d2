"""Every command: --version, subcommand usage on a bad flag, descriptions and defaults in --help,
one line and exit status 2 on a startup error (-v adds the traceback), the same --db forms."""

from __future__ import annotations

import argparse
from importlib.metadata import EntryPoint
from typing import Any

import pytest

from grpcmesh.cli.main import GROUP, build_parser, commands, main

COMMANDS = [
    "ca",
    "commandbus",
    "demo",
    "eventstore",
    "gateway",
    "proto",
    "querybus",
    "saga",
    "sidecar",
    "stat",
    "tap",
    "traces",
]


def add_parser(sub: Any) -> None:
    p = sub.add_parser("boom", help="fail at startup")
    p.add_argument("--kind", default="port", help="which failure")
    p.set_defaults(func=_boom)


def _boom(args: argparse.Namespace) -> int:
    if args.kind == "port":
        raise OSError(98, "address already in use: 127.0.0.1:50061")
    raise ModuleNotFoundError("No module named 'no'", name="no")


PLUGIN = EntryPoint(name="boom", value=f"{__name__}:add_parser", group=GROUP)


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.startswith("grpcmesh 0.")


@pytest.mark.parametrize("command", ["eventstore", "sidecar", "gateway", "saga"])
def test_a_bad_flag_prints_the_subcommands_usage(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as done:
        main([command, *(["--definitions", "m:a"] if command == "saga" else []), "--no-such-flag"])
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: grpcmesh {command} ")
    assert "unrecognized arguments: --no-such-flag" in err


def test_nested_verbs_get_their_own_usage(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["proto", "gen", "src", "--out", "x", "--bogus"])
    assert capsys.readouterr().err.startswith("usage: grpcmesh proto gen ")


@pytest.mark.parametrize("command", COMMANDS)
def test_every_help_has_a_description_and_defaults(command: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices[command]
    assert sub.description, f"{command} has no description"
    text = sub.format_help()
    for action in sub._actions:
        if action.option_strings and action.default not in (None, False, argparse.SUPPRESS) and action.help:
            assert "default" in (action.help or "").lower() or "(default: " in text, action.dest
    for action in sub._actions:
        if action.option_strings and action.dest not in ("help",):
            assert action.help, f"{command} {action.option_strings[0]} has no help"


def test_defaults_are_shown(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["eventstore", "--help"])
    out = " ".join(capsys.readouterr().out.split())
    assert "most events in one append (default: 1000)" in out
    assert "(default: eventstore.db)" in out


@pytest.mark.parametrize(
    ("kind", "line"),
    [
        ("port", "grpcmesh boom: OSError: [Errno 98] address already in use: 127.0.0.1:50061\n"),
        ("module", "grpcmesh boom: cannot import 'no': no such module (check the name and PYTHONPATH)\n"),
    ],
)
def test_a_startup_error_is_one_line_and_status_2(
    kind: str, line: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["boom", "--kind", kind], [*commands(), PLUGIN]) == 2
    assert capsys.readouterr().err == line


def test_verbose_shows_the_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["-v", "boom"], [*commands(), PLUGIN]) == 2
    err = capsys.readouterr().err
    assert "Traceback (most recent call last)" in err
    assert err.endswith("grpcmesh boom: OSError: [Errno 98] address already in use: 127.0.0.1:50061\n")


@pytest.mark.parametrize(
    ("argv", "db"),
    [
        (["eventstore", "--db", "events.db"], "sqlite://events.db"),
        (
            ["eventstore", "--db", "sqlite:///tmp/e.db?synchronous=normal"],
            "sqlite:///tmp/e.db?synchronous=normal",
        ),
        (["eventstore", "--db", "postgresql://me@db:5432/events"], "postgresql://me@db:5432/events"),
        (["saga", "--definitions", "m:a", "--db", "saga.db"], "sqlite://saga.db"),
        (["querybus", "--db", "sqlite://rm.db"], "rm.db"),
        (["querybus", "--db", "sqlite:///var/rm.db"], "/var/rm.db"),
        (["querybus", "--db", "rm.db"], "rm.db"),
        (["querybus"], "readmodels.db"),
        (["eventstore"], "sqlite://eventstore.db"),
    ],
)
def test_database_arguments_take_the_same_forms_everywhere(argv: list[str], db: str) -> None:
    assert build_parser().parse_args(argv).db == db


@pytest.mark.parametrize(
    ("argv", "problem"),
    [
        (["querybus", "--db", "postgresql://x/y"], "SQLite only"),
        (["eventstore", "--db", "mysql://x/y"], "expected a file path, sqlite:///abs/path.db"),
        (["saga", "--definitions", "m:a", "--db", "sqlite://"], "no file after sqlite://"),
    ],
)
def test_a_bad_database_argument_is_a_usage_error(
    argv: list[str], problem: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as done:
        main(argv)
    assert done.value.code == 2
    err = capsys.readouterr().err
    assert f"usage: grpcmesh {argv[0]}" in err
    assert "argument --db" in err
    assert problem in err


@pytest.mark.parametrize(
    "argv", [["gateway", "--config", "gw.toml", "openapi"], ["gateway", "openapi", "--config", "gw.toml"]]
)
def test_gateway_openapi_takes_the_config_either_side(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.config == "gw.toml"
    assert args.func.__name__ == "_openapi"

"""``grpcmesh commandbus`` / ``grpcmesh querybus`` parse into the configs the services run with."""

from __future__ import annotations

from grpcmesh.cli.main import build_parser


def test_commandbus_flags() -> None:
    args = build_parser().parse_args(["commandbus", "--eventstore", "127.0.0.1:1", "--port", "0"])
    assert (args.app, args.eventstore, args.port, args.max_attempts) == (
        "grpcmesh.services.examples.orders",
        "127.0.0.1:1",
        0,
        10,
    )


def test_querybus_flags_default_to_the_sidecar() -> None:
    args = build_parser().parse_args(["querybus", "--db", "read.db"])
    assert (args.eventstore, args.db, args.port, args.max_wait) == (None, "read.db", 50081, 30.0)

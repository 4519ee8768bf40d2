"""``grpcmesh proto new|gen``: scaffold a contract and generate its stubs."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    proto = sub.add_parser("proto", help="scaffold .proto contracts and generate stubs")
    verbs = proto.add_subparsers(dest="verb", metavar="VERB", required=True)

    new = verbs.add_parser("new", help="scaffold a .proto, a server skeleton and a test")
    new.add_argument("name", help="fully-qualified service name, e.g. shop.v1.Orders")
    new.add_argument("--out", type=Path, default=Path("."), help="folder to write into (default: .)")
    new.set_defaults(func=_new)

    gen = verbs.add_parser("gen", help="generate client/server stubs and .pyi for a .proto tree")
    gen.add_argument("src", type=Path, help="root folder of the .proto tree (the -I root)")
    gen.add_argument("--out", type=Path, required=True, help="folder to write generated modules into")
    gen.add_argument(
        "-I", "--include", type=Path, action="append", default=[], help="extra import root (repeatable)"
    )
    gen.set_defaults(func=_gen)


def _new(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.scaffold import ScaffoldError, scaffold

    try:
        for path in scaffold(args.name, args.out):
            print(f"wrote {path}")
    except ScaffoldError as err:
        raise CommandError(str(err)) from None
    return 0


def _gen(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.cli.protogen import ProtoGenError, generate

    try:
        result = generate(args.src, args.out, extra_includes=args.include)
    except ProtoGenError as err:
        raise CommandError(f"protoc failed:\n{err}") from None
    for path in result.files:
        print(f"wrote {path}")
    return 0

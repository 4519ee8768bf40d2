"""``grpcmesh ca init|issue|inspect|finish-rotation``: the mesh certificate authority.

Thin argument handling over :mod:`grpcmesh.sdk.pki`, which does the work.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

__all__ = ["add_parser"]


def add_parser(sub: Any) -> None:
    ca = sub.add_parser("ca", help="mesh certificate authority: SPIFFE certificates for sidecars")
    verbs = ca.add_subparsers(dest="verb", metavar="VERB", required=True)
    dir_help = "CA directory (default: ./mesh-ca)"

    init = verbs.add_parser("init", help="create a root and an intermediate (keys 0600) and bundle.pem")
    init.add_argument("--dir", type=Path, default=Path("mesh-ca"), help=dir_help)
    init.add_argument("--trust-domain", default=None, help="SPIFFE trust domain (default: grpcmesh.local)")
    init.add_argument(
        "--rotate", action="store_true", help="replace the root; the old one stays in bundle.pem"
    )
    init.set_defaults(func=_init)

    issue = verbs.add_parser(
        "issue", help="a short-lived leaf for SERVICE: SERVICE.pem, SERVICE.key, bundle.pem"
    )
    issue.add_argument("service", help="mesh service name (DNS SAN; spiffe://<td>/service/<name> URI SAN)")
    issue.add_argument("--dir", type=Path, default=Path("mesh-ca"), help=dir_help)
    issue.add_argument("--out", type=Path, default=Path("."), help="folder to write into (default: .)")
    issue.add_argument("--hours", type=float, default=None, help="lifetime in hours (default: 24)")
    issue.set_defaults(func=_issue)

    inspect = verbs.add_parser("inspect", help="show the certificates in PEM files (default: the CA's)")
    inspect.add_argument("files", type=Path, nargs="*", help="PEM files (certificate chains or bundles)")
    inspect.add_argument("--dir", type=Path, default=Path("mesh-ca"), help=dir_help)
    inspect.set_defaults(func=_inspect)

    done = verbs.add_parser(
        "finish-rotation", help="after a root rotation: bundle.pem trusts only the new root"
    )
    done.add_argument("--dir", type=Path, default=Path("mesh-ca"), help=dir_help)
    done.set_defaults(func=_finish)


def _init(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.sdk import pki

    try:
        bundle = pki.init_ca(args.dir, args.trust_domain or pki.DEFAULT_TRUST_DOMAIN, rotate=args.rotate)
    except pki.CaError as err:
        raise CommandError(str(err)) from None
    roots = len(pki.describe(bundle.read_bytes()))
    print(f"wrote {args.dir}/root.pem, ca.pem (keys 0600) and {bundle} ({roots} root{'s' * (roots > 1)})")
    return 0


def _issue(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.sdk import pki

    try:
        hours = pki.DEFAULT_LEAF_HOURS if args.hours is None else args.hours
        files = pki.issue(args.dir, args.service, args.out, hours=hours)
    except pki.CaError as err:
        raise CommandError(str(err)) from None
    print(f"issued {files.identity}: {files.cert} {files.key} {files.bundle}")
    print("sidecar flags: " + " ".join(files.flags()))
    return 0


def _inspect(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.sdk import pki

    paths = args.files or [args.dir / "bundle.pem", args.dir / "ca.pem"]
    for path in paths:
        try:
            infos = pki.describe(path.read_bytes())
        except OSError as err:
            raise CommandError(f"{path}: {err.strerror}") from None
        except pki.CaError as err:
            raise CommandError(f"{path}: {err}") from None
        for i, info in enumerate(infos):
            print(f"{path} [{i}]")
            for line in info.lines():
                print(f"  {line}")
    return 0


def _finish(args: argparse.Namespace) -> int:
    from grpcmesh.cli.errors import CommandError
    from grpcmesh.sdk import pki

    try:
        bundle = pki.finish_rotation(args.dir)
    except pki.CaError as err:
        raise CommandError(str(err)) from None
    print(f"wrote {bundle} (the current root only)")
    return 0

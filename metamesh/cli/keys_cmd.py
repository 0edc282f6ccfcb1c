"""``metamesh keys generate``: a CurveZMQ keypair for a node."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.errors import MetameshError

HELP = "make a CurveZMQ keypair so nodes encrypt and admit only allowlisted peers"

DESCRIPTION = """\
Write node.key (public) and node.key_secret (secret, mode 0600) into DIR.
To let host B in on host A, copy B's node.key to A's DIR/authorized/<B's node id>.key
and the other way round; then start both nodes with --keys DIR.
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "keys", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ksub = p.add_subparsers(dest="keys_command", metavar="ACTION", required=True)
    g = ksub.add_parser(
        "generate",
        help="write a new keypair",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    g.add_argument(
        "--dir",
        type=Path,
        default=Path("metamesh-node/keys"),
        help="keys directory (default metamesh-node/keys)",
    )
    g.add_argument("--force", action="store_true", help="replace an existing keypair")
    g.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.gossip.keys import generate_keys

    try:
        public = generate_keys(args.dir, force=args.force)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh keys: {exc}\n")
        return exitcodes.CONFIG
    except OSError as exc:  # the directory cannot be made or written
        sys.stderr.write(f"metamesh keys: cannot write keys in {args.dir}: {exc.strerror or exc}\n")
        return exitcodes.CONFIG
    sys.stdout.write(f"wrote {args.dir}/node.key and node.key_secret\npublic key: {public.decode()}\n")
    return exitcodes.OK

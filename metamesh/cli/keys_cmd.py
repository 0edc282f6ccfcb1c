"""``metamesh keys generate``: a CurveZMQ keypair for a node; ``metamesh keys api``: a gateway's API key."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.errors import MetameshError

HELP = "make a CurveZMQ keypair (nodes encrypt and admit only allowlisted peers) or a gateway API key"

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
    a = ksub.add_parser(
        "api",
        help="add an API key for an application to a gateway's keys file",
        description=API_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    a.add_argument("--file", type=Path, required=True, help="the keys file (made, mode 0600, if missing)")
    a.add_argument("--name", required=True, help="who the key is for (owns its decisions; shown in logs)")
    a.set_defaults(run=run_api)


API_DESCRIPTION = """\
Make a random API key for NAME, append "NAME KEY" to the keys file, and print the key
once (it is not shown again; the file holds it). Start or restart the gateway with
--keys-file FILE; clients send Authorization: Bearer KEY (the openai client: api_key=KEY).

example:
  metamesh keys api --file ./api-keys --name app1
  metamesh gateway --home ./gw --backend local --gateway 0.0.0.0:8080 --keys-file ./api-keys
"""


def run_api(args: argparse.Namespace) -> int:
    from metamesh.gateway.security import add_api_key

    try:
        key = add_api_key(args.file, args.name)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh keys: {exc}\n")
        return exitcodes.CONFIG
    sys.stderr.write(f"added key {args.name!r} to {args.file}; it is printed once, below\n")
    sys.stdout.write(key + "\n")
    return exitcodes.OK


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

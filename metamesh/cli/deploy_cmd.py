"""``metamesh deploy systemd``: a unit file for a node on a LAN host."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes

HELP = "render deployment files (systemd units) for LAN hosts"

DESCRIPTION = """\
Prints a systemd unit that runs a node (or, with --coordinator, the
coordinator) with the flags you give after --. Install it with:

  metamesh deploy systemd --name n1 --home /var/lib/metamesh/n1 -- \\
      --profile lan --host 0.0.0.0 --beacon --keys /var/lib/metamesh/n1/keys \\
      > /etc/systemd/system/metamesh-n1.service
  systemctl daemon-reload && systemctl enable --now metamesh-n1

  metamesh deploy systemd --coordinator --name coord --home /var/lib/metamesh/coord -- \\
      --profile lan --host 0.0.0.0 --router-port 5556 --pub-port 5555 --beacon \\
      > /etc/systemd/system/metamesh-coord.service
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "deploy", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    dsub = p.add_subparsers(dest="deploy_command", metavar="TARGET", required=True)
    s = dsub.add_parser(
        "systemd",
        help="print a systemd unit for a node",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    s.add_argument("--name", required=True, help="node name, used for the unit and the node id")
    s.add_argument("--home", type=Path, required=True, help="the node's directory on the host")
    s.add_argument(
        "--coordinator", action="store_true", help="run `metamesh coordinator` instead of `metamesh node`"
    )
    s.add_argument("--user", default="metamesh", help="system user to run as (default metamesh)")
    s.add_argument("--python", default=sys.executable, help="python with metamesh installed")
    s.add_argument(
        "node_args", nargs=argparse.REMAINDER, help="-- then flags for `metamesh node` (or `coordinator`)"
    )
    s.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.deploy.systemd import render_unit

    node_args = [a for a in args.node_args if a != "--"]
    if "--home" in node_args:
        sys.stderr.write("metamesh deploy: give --home before --, not in the node flags\n")
        return exitcodes.USAGE
    sys.stdout.write(
        render_unit(
            name=args.name,
            home=args.home,
            args=["--name", args.name, *node_args],
            user=args.user,
            python=args.python,
            command="coordinator" if args.coordinator else "node",
            description="metamesh coordinator" if args.coordinator else "metamesh node",
        )
    )
    return exitcodes.OK

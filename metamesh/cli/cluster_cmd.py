"""``metamesh cluster up|status|down``: a local multi-process cluster in the background."""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.errors import MetameshError

#: What `cluster up` can start without further options (the others need data, torch or a pool).
CLUSTER_LEARNERS = ("none", "prompts")
CLUSTER_PROFILES = ("local", "lan", "edge")

HELP = "start, inspect and stop a local cluster of node processes in the background"

DESCRIPTION = """\
up starts N node processes on this machine (each finds the others through the
first), records them in DIR/cluster.json and returns; status shows each node;
down stops exactly the processes up started.

examples:
  metamesh cluster up --nodes 4 --learner prompts
  metamesh cluster status
  metamesh cluster down
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "cluster", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    csub = p.add_subparsers(dest="cluster_command", metavar="ACTION", required=True)
    for name, text in (
        ("up", "start the cluster"),
        ("status", "show each node"),
        ("down", "stop the cluster"),
    ):
        c = csub.add_parser(name, help=text)
        c.add_argument("--dir", type=Path, default=Path("metamesh-cluster"), help="cluster directory")
        if name == "up":
            c.add_argument("--nodes", type=int, default=3, help="how many nodes, 1 or more (default 3)")
            c.add_argument(
                "--profile", default="local", choices=CLUSTER_PROFILES, help="node profile (default local)"
            )
            c.add_argument(
                "--learner",
                default="none",
                choices=CLUSTER_LEARNERS,
                help="what each node learns: none or prompts (default none)",
            )
            c.add_argument(
                "--pace", type=float, default=0.2, help="seconds between learning steps (default 0.2)"
            )
        c.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.deploy.cluster import cluster_down, cluster_up, is_running, read_state

    if args.cluster_command == "up" and args.nodes < 1:
        sys.stderr.write(f"metamesh cluster up: --nodes must be 1 or more, not {args.nodes}\n")
        return exitcodes.USAGE
    try:
        if args.cluster_command == "up":
            extra = ["--profile", args.profile, "--learner", args.learner, "--pace", str(args.pace)]
            nodes = cluster_up(args.dir, nodes=args.nodes, extra_args=extra)
            for n in nodes:
                sys.stdout.write(f"{n.id:<8} pid {n.pid:<8} router {n.router}\n")
            sys.stdout.write(
                f"{len(nodes)} nodes running; `metamesh cluster down --dir {args.dir}` stops them\n"
            )
            return exitcodes.OK
        if args.cluster_command == "down":
            stopped = cluster_down(args.dir)
            sys.stdout.write(f"stopped {stopped} node(s)\n")
            return exitcodes.OK
        nodes = read_state(args.dir)
        if not nodes:
            sys.stdout.write(f"no cluster in {args.dir}\n")
            return exitcodes.OK
        from metamesh.node.client import ask
        from metamesh.protocol import Status, StatusRequest

        sys.stdout.write(f"{'NODE':<8} {'PID':<8} {'STATE':<8} {'ALIVE PEERS':<12} {'EPISODES':<9} ROUTER\n")
        for n in nodes:
            running = is_running(n)
            peers = episodes = "-"
            if running:
                try:
                    reply = asyncio.run(ask(n.router, StatusRequest(), timeout=2.0))
                    if isinstance(reply.body, Status):
                        report = reply.body.report
                        peers = str(sum(p["state"] == "alive" for p in report["peers"].values()))
                        episodes = str(report.get("learner", {}).get("episodes", "-"))
                except (TimeoutError, MetameshError):
                    peers = "no answer"
            state = "running" if running else "gone"
            sys.stdout.write(f"{n.id:<8} {n.pid:<8} {state:<8} {peers:<12} {episodes:<9} {n.router}\n")
        return exitcodes.OK
    except MetameshError as exc:
        sys.stderr.write(f"metamesh cluster: {exc}\n")
        return exitcodes.for_error(exc)

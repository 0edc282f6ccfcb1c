"""``metamesh coordinator``: run the optional thin coordinator until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
from pathlib import Path

from metamesh.cli import node_cmd

HELP = "run the optional coordinator: global insight memory, meta-learning, meta broadcast"

DESCRIPTION = """\
Run the coordinator: a node that joins every domain its peers announce, keeps a
bounded memory of their insights, and once a round (--meta-interval) broadcasts one
versioned set of meta-parameters on the global topic when something changed:

  experts learners   initial weights per domain (a Reptile step towards the
                     domain's averaged model) and a learning rate per expert
                     (raised while its loss falls, cut when it rises or swings)
  prompt learners    a prior Q-row per category from every domain, and an
                     exploration rate per category from how settled it is

It holds no data, and nobody waits for it: kill it and the network keeps
learning; restart it with the same --home and it restores its memory and goes
on with a higher version. Nodes that name it with --seed also use it to find
peers (any node answers a hello with peers it knows).

examples:
  metamesh coordinator --profile lan --host 0.0.0.0 --router-port 5556 --pub-port 5555
  metamesh node --learner experts --domain medical --seed tcp://COORDINATOR:5556
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "coordinator",
        help=HELP,
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    node_cmd.add_network_options(p)
    c = node_cmd.groups(p)  # the meta-engine's settings are the coordinator learner's: learning
    c.add(
        "--meta-interval",
        "--interval",
        type=float,
        metavar="SECONDS",
        help="seconds per round (default 1)",
    )
    c.add(
        "--meta-keepalive",
        "--keepalive",
        type=int,
        metavar="ROUNDS",
        help="rebroadcast unchanged meta-parameters after this many rounds (default 10)",
    )
    c.add(
        "--reptile-step",
        type=float,
        metavar="STEP",
        help="how far a domain's initial weights move towards its average per round, in (0, 1] (default 0.5)",
    )
    c.add("--memory-total", type=int, metavar="N", help="insights kept in all (default 100000)")
    c.add("--memory-per-domain", type=int, metavar="N", help="insights kept per domain (default 20000)")
    c.add("--memory-per-client", type=int, metavar="N", help="insights kept per node (default 500)")
    p.set_defaults(run=run, learner="coordinator", home=Path("metamesh-coordinator"))


def run(args: argparse.Namespace) -> int:
    return node_cmd.run(args, command="coordinator")

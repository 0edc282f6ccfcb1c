"""``metamesh demo``: the main job on a fresh machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import experiment_cmd

HELP = "run several learning nodes on this machine and show what federation buys"

DESCRIPTION = """\
Starts node processes on localhost that learn, with an offline simulated LLM,
which prompt strategy answers best per question category — alone, and sharing
Q-tables with the peers of their category domains — and ends with a table
(random vs local vs federated), a plot and the event logs. About half a minute
on two cores; every process it starts is stopped, even on Ctrl-C.
"""

NEXT_STEPS = """
Next:
  metamesh experiment prompts --llm ollama:MODEL --pace 0    the same on a real model
  metamesh node --help                                       run nodes on LAN hosts
  metamesh status tcp://HOST:PORT                            look inside a running node
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    experiment_cmd.add_options(p)
    p.set_defaults(run=run, out=Path("metamesh-runs/demo"))


def run(args: argparse.Namespace) -> int:
    code = experiment_cmd.run(args)
    if code == 0:
        sys.stdout.write(NEXT_STEPS)
    return code

"""``metamesh demo``: the main job on a fresh machine."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import experiment_cmd
from metamesh.cli.studies import have_torch

#: The folder inside the demo's --out that its experts run writes.
EXPERTS = "experts"

HELP = "run several learning nodes on this machine and show what federation buys"

DESCRIPTION = """\
Starts node processes on localhost that learn, with an offline simulated LLM,
which prompt strategy answers best per question category -- alone, sharing
Q-tables with the peers of their category domains, and the same with a
coordinator -- and ends with a table (random vs local vs federated), a plot and
the event logs. Then a late joiner shows what the coordinator gives a newcomer.
Where torch is installed, a small experts run follows (nodes sharing model
weights, never data), written to the experts folder inside --out. About 45 s on
two cores (half a minute without torch); every process it starts is stopped,
even on Ctrl-C.
"""

NEXT_STEPS = """
Next:
  metamesh experiment prompts --llm ollama:MODEL --pace 0    the same on a real model
  metamesh experiment experts --coordinator                  the full experts experiment
  metamesh node --help                                       run nodes on LAN hosts
  metamesh report {out:<42} the table again, from the event logs
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "demo", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    experiment_cmd.add_options(p, out=Path("metamesh-runs/demo"))
    p.add_argument(
        "--no-coordinator", dest="coordinator", action="store_false", help="run without the coordinator"
    )
    p.add_argument("--no-experts", action="store_true", help="skip the experts run even with torch installed")
    p.set_defaults(run=run, coordinator=True)


def experts_args(args: argparse.Namespace) -> argparse.Namespace:
    """The demo's small experts run, parsed by ``experiment experts``'s own options, so every
    option that command gains has its default here too. It writes into ``--out``/experts: never
    beside the demo's folder, which may be a user's."""
    parser = argparse.ArgumentParser(add_help=False)
    experiment_cmd.add_experts_options(parser)
    argv = ["--per-domain", "2", "--rounds", "8", "--pace", "0.2", "--seed", str(args.seed),
            "--arms", "local,domain", "--out", str(args.out / EXPERTS)]  # fmt: skip
    flags = [*(["--coordinator"] if args.coordinator else []), *(["--force"] if args.force else [])]
    return parser.parse_args([*argv, *flags])


def run(args: argparse.Namespace) -> int:
    code = experiment_cmd.run(args, command="demo", also_writes=[EXPERTS])
    if code == 0 and not args.no_experts and have_torch():
        sys.stdout.write("\nExperts: sharing model weights, never data\n")
        sys.stdout.flush()
        code = experiment_cmd.run_experts(experts_args(args))
    if code == 0:
        sys.stdout.write(NEXT_STEPS.format(out=str(args.out)))
    return code

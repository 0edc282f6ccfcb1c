"""``metamesh experiment evolve``: prompts that rewrite themselves, alone and federated, and a drift run."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.cli.studies import add_out, names, run_study

HELP = "prompt evolution (seed 003): static vs evolved prompts, local vs federated, and a drift run"

DESCRIPTION = """\
evolve: nodes evolve prompt templates per question category with the seed's
strategies (performance-based, error analysis by the LLM, ablation, chain of
thought, few-shot examples), each scored on the node's own questions. Federated
nodes share the best prompt of a category when it improves, and adopt a
received prompt only if it wins on their own questions. Reported: held-out
accuracy of the static baseline prompt and of the evolved prompts (the win
margin), and LLM calls per node. Then a drift run: prompt-strategy nodes learn
together and one of them starts choosing at random; its closed-loop monitor
flags the change and its peers quarantine it.

examples:
  metamesh experiment evolve                   # simulated LLM, offline, about a minute
  metamesh experiment evolve --nodes 5 --no-drift
  metamesh experiment evolve --dataset commonsense+sentiment --no-drift
"""


def add_parser(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = esub.add_parser(
        "evolve", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=3, help="nodes per arm (default 3)")
    p.add_argument("--arms", default="local,federated", help="comma-separated arms (default local,federated)")
    p.add_argument("--pace", type=float, default=0.01, help="seconds between learning steps (default 0.01)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--dataset",
        default="",
        help="questions to evolve on: trivia (default), commonsense, sentiment, several joined with +, "
        "or a JSONL/CSV file",
    )
    p.add_argument("--no-drift", action="store_true", help="skip the drift run")
    add_out(p, Path("metamesh-runs/evolve"), "the plots")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.experiments.evolve import ARMS, EvolveExperiment

    arms = names(args.arms)
    if not arms or any(a not in ARMS for a in arms) or args.nodes < 2:
        sys.stderr.write(f"metamesh experiment: arms must be among {', '.join(ARMS)}; --nodes >= 2\n")
        return exitcodes.USAGE
    study = EvolveExperiment(
        root=args.out.resolve(),
        nodes=args.nodes,
        pace=args.pace,
        seed=args.seed,
        arms=arms,
        dataset=args.dataset,
        drift=not args.no_drift,
    )
    return run_study(study, args, "experiment evolve")

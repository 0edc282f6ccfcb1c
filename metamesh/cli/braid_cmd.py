"""``metamesh experiment braid``: a learned policy of which LLMs to combine, against fixed baselines."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.cli.studies import add_out, have_torch, names, run_study
from metamesh.errors import ConfigError

HELP = "the meta-braider (seed 004): which models of a pool to combine and how, local vs federated"

DESCRIPTION = """\
braid: every node learns a policy that decides, per task, which models of a
pool to call and how to fuse their answers (a single model, a weighted vote, a
router giving each part of a task its own model, or a cascade that escalates
from a cheap model when it is unsure), never exceeding the task's compute
budget or latency limit. It learns from 1-5 star ratings by REINFORCE. Nodes
see mostly one task type each; federated nodes average their policies in the
'braid' domain. Reported per budget, on the same held-out tasks: the learned
policies against the best single model, a uniform ensemble and random
decisions; the tasks per node each arm needed to reach the best single model's
reward; explanations of sample decisions; and a few-shot check on a task type
(legal) no node trained on. The pool is simulated and offline (docs/braid.md).

examples:
  metamesh experiment braid                        # 4 nodes per arm, about a minute
  metamesh experiment braid --rounds 60 --budgets 1,3,8
"""


def add_parser(esub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = esub.add_parser(
        "braid", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--nodes", type=int, default=4, help="nodes per arm (default 4)")
    p.add_argument("--rounds", type=int, default=30, help="rounds per node (default 30)")
    p.add_argument("--tasks-per-round", type=int, default=64, help="tasks per round (default 64)")
    p.add_argument("--arms", default="local,federated", help="comma-separated arms (default local,federated)")
    p.add_argument(
        "--budgets", default="1.5,4,10", help="compute budgets, pool cost units (default 1.5,4,10)"
    )
    p.add_argument("--latency-limit", type=float, default=3000.0, help="latency limit, ms (default 3000)")
    p.add_argument(
        "--target",
        type=float,
        default=0.625,
        help="held-out reward the arms' learning speed is compared at (default 0.625; the best single "
        "model scores about 0.46 on that set, a policy that routes well about 0.65)",
    )
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--pool", default="sim", help="model pool: sim, or a TOML/JSON file of simulated models (default sim)"
    )
    add_out(p, Path("metamesh-runs/braid"), "the plots")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    if not have_torch():
        sys.stderr.write(
            "metamesh experiment braid: the braid learner needs torch: pip install 'metamesh[torch]'\n"
        )
        return exitcodes.CONFIG
    from metamesh.experiments.braid import ARMS, BraidExperiment

    arms = names(args.arms)
    try:
        budgets = [float(b) for b in args.budgets.split(",")]
    except ValueError:
        budgets = []
    if not arms or any(a not in ARMS for a in arms) or args.nodes < 2 or args.rounds < 1 or not budgets:
        sys.stderr.write(
            f"metamesh experiment braid: arms must be among {', '.join(ARMS)}; --nodes >= 2; --rounds >= 1; "
            "--budgets a comma-separated list of numbers\n"
        )
        return exitcodes.USAGE
    study = BraidExperiment(
        root=args.out.resolve(),
        nodes=args.nodes,
        rounds=args.rounds,
        tasks_per_round=args.tasks_per_round,
        seed=args.seed,
        arms=arms,
        budgets=budgets,
        latency_limit=args.latency_limit,
        target=args.target,
        pool=args.pool,
    )
    try:
        study.baselines()  # a bad --pool is a usage error here, not 8 failing nodes
    except ConfigError as exc:
        sys.stderr.write(f"metamesh experiment braid: {exc}\n")
        return exitcodes.USAGE
    return run_study(study, args, "experiment braid")

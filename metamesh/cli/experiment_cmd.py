"""``metamesh experiment prompts|experts|evolve|braid``; ``metamesh demo`` reuses the prompts experiment."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.cli.studies import add_out, have_torch, names, run_study
from metamesh.errors import MetameshError

HELP = "run an experiment with real node processes on this machine"

DESCRIPTION = """\
prompts: several nodes learn which prompt strategy makes an LLM answer best per
question category (seed 000). Three arms on the same questions and seeds:
a random strategy, each node learning alone, and nodes sharing Q-tables in
their category domains. Each node mostly sees two categories (non-IID); all
are scored greedily on the same held-out questions.

examples:
  metamesh experiment prompts                                # simulated LLM, offline
  metamesh experiment prompts --nodes 6 --episodes 300
  metamesh experiment prompts --llm ollama:qwen2:0.5b --pace 0    # a real model
  metamesh experiment prompts --llm openai:http://127.0.0.1:8080/v1:local --pace 0
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "experiment", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    esub = p.add_subparsers(dest="experiment", metavar="NAME", required=True)
    prompts = esub.add_parser(
        "prompts",
        help="federated prompt-strategy learning (seed 000)",
        description=DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(prompts)
    prompts.set_defaults(run=run)
    experts = esub.add_parser(
        "experts",
        help="experts with weight deltas: local vs domain gossip vs one global average (seeds 001, 002)",
        description=EXPERTS_DESCRIPTION,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_experts_options(experts)
    experts.set_defaults(run=run_experts)
    from metamesh.cli import braid_cmd, evolve_cmd

    evolve_cmd.add_parser(esub)
    braid_cmd.add_parser(esub)


EXPERTS_DESCRIPTION = """\
experts: nodes train small mixtures of experts (torch) on private synthetic data
of three domains -- each domain its own function, each node one region of its
domain's inputs (non-IID) -- and share weights, never data. Arms on the same
data and seeds: each node alone; averaging with the peers of its domain; one
average across all domains (what a single FedAvg server builds); and the
domain arm with differential privacy (clipped, noised updates; epsilon from an
RDP accountant). Scored by mean squared error on held-out data of the node's
whole domain: lower is better.

Needs torch: pip install 'metamesh[torch]'.

examples:
  metamesh experiment experts
  metamesh experiment experts --per-domain 4 --rounds 20
  metamesh experiment experts --arms local,domain,private --dp-clip 0.05 --dp-noise 2
"""


def add_experts_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--per-domain", type=int, default=4, help="nodes per domain (default 4)")
    p.add_argument(
        "--domains",
        default="economic,medical,technology",
        help="comma-separated synthetic domains (default economic,medical,technology)",
    )
    p.add_argument("--rounds", type=int, default=10, help="training rounds per node (default 10)")
    p.add_argument("--samples", type=int, default=128, help="training samples per node (default 128)")
    p.add_argument("--pace", type=float, default=0.3, help="seconds between rounds (default 0.3)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--arms", default="local,domain,global,private", help="comma-separated arms to run (default: all)"
    )
    p.add_argument(
        "--coordinator",
        action="store_true",
        help="also run the domain arm with a coordinator (domain+c), then a late joiner beside it",
    )
    p.add_argument(
        "--poisoners",
        type=int,
        default=2,
        help="attacked and defended arms: nodes per domain publishing poisoned weights (default 2)",
    )
    p.add_argument("--dp-clip", type=float, default=0.1, help="private arm: clip norm (default 0.1)")
    p.add_argument("--dp-noise", type=float, default=1.0, help="private arm: noise multiplier (default 1.0)")
    add_out(p, Path("metamesh-runs/experts"), "the plot")


def run_experts(args: argparse.Namespace) -> int:
    from metamesh.experiments.experts import ARMS, ExpertsExperiment

    arms, domains = names(args.arms), names(args.domains)
    bad = [a for a in arms if a not in ARMS]
    if bad or not domains or args.per_domain < 1 or args.rounds < 1 or args.samples < 1:
        sys.stderr.write(
            f"metamesh experiment: arms must be among {', '.join(ARMS)}; per-domain, rounds, samples >= 1\n"
        )
        return exitcodes.USAGE
    if "private" in arms and not (args.dp_clip > 0 and args.dp_noise >= 0):
        sys.stderr.write("metamesh experiment: the private arm needs --dp-clip > 0 and --dp-noise >= 0\n")
        return exitcodes.USAGE
    if not have_torch():
        sys.stderr.write("metamesh experiment: the experts need torch: pip install 'metamesh[torch]'\n")
        return exitcodes.CONFIG
    if any(a in arms for a in ("attacked", "defended")) and not 0 < args.poisoners < args.per_domain / 2:
        sys.stderr.write(
            "metamesh experiment: --poisoners must be at least 1 and under half of --per-domain\n"
        )
        return exitcodes.USAGE
    study = ExpertsExperiment(
        root=args.out.resolve(),
        domains=domains,
        per_domain=args.per_domain,
        rounds=args.rounds,
        samples=args.samples,
        pace=args.pace,
        seed=args.seed,
        arms=arms,
        dp_clip=args.dp_clip,
        dp_noise=args.dp_noise,
        coordinator=args.coordinator,
        poisoners=args.poisoners,
    )
    return run_study(study, args, "experiment experts")


def add_options(
    p: argparse.ArgumentParser, *, episodes: int = 200, out: Path = Path("metamesh-runs/prompts")
) -> None:
    p.add_argument("--nodes", type=int, default=4, help="nodes per arm (default 4)")
    p.add_argument("--episodes", type=int, default=episodes, help=f"questions per node (default {episodes})")
    p.add_argument("--eval-every", type=int, default=25, help="evaluate every N episodes (default 25)")
    p.add_argument(
        "--pace",
        type=float,
        default=0.02,
        help="seconds between questions; the simulated LLM answers at once (default 0.02)",
    )
    p.add_argument("--llm", default="sim", help="sim (default), local, ollama:MODEL or openai:URL:MODEL")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument(
        "--seeds",
        type=int,
        default=1,
        help="run every arm on seeds SEED..SEED+N-1 and report medians and ranges (default 1)",
    )
    p.add_argument("--arms", default="random,local,federated", help="comma-separated arms to run")
    p.add_argument(
        "--coordinator",
        action="store_true",
        help="also run the federated arm with a coordinator (federated+c), then a late joiner beside it",
    )
    add_out(p, out, "the plot")


def _check_llm(spec: str) -> str:
    """One line describing why the LLM cannot be used, or "" when it can."""
    import asyncio

    from metamesh.errors import LLMError
    from metamesh.learners.prompts.dataset import builtin_trivia
    from metamesh.llm.spec import parse_llm_spec

    async def check() -> str:
        try:
            llm = parse_llm_spec(spec, questions=builtin_trivia())
        except MetameshError as exc:
            return str(exc)
        try:
            checker = getattr(llm, "check", None)
            if checker is not None:
                await checker()
        except LLMError as exc:
            return str(exc)
        finally:
            await llm.aclose()
        return ""

    return asyncio.run(check())


def run(
    args: argparse.Namespace, *, command: str = "experiment prompts", also_writes: Sequence[str] = ()
) -> int:
    """The prompts study; ``also_writes`` names what a caller (the demo) adds to its folder."""
    from metamesh.experiments.prompts import ARMS, PromptExperiment

    if args.llm == "local" or args.llm.startswith("local:"):  # one managed server; its nodes call it
        from metamesh.llm.local import LocalModelServer

        with LocalModelServer(model=Path(args.llm[6:]) if args.llm[6:] else None, watch=True) as server:
            local = argparse.Namespace(**vars(args) | {"llm": server.spec})
            return run(local, command=command, also_writes=also_writes)
    arms = names(args.arms)
    bad = [a for a in arms if a not in ARMS]
    if bad or args.nodes < 1 or args.episodes < 1:
        sys.stderr.write(
            f"metamesh experiment: arms must be among {', '.join(ARMS)}; nodes and episodes >= 1\n"
        )
        return exitcodes.USAGE
    if args.llm != "sim":
        problem = _check_llm(args.llm)
        if problem:
            sys.stderr.write(f"metamesh experiment: {problem}\n")
            return exitcodes.UNREACHABLE
    study = PromptExperiment(
        root=args.out.resolve(),
        nodes=args.nodes,
        episodes=args.episodes,
        eval_every=args.eval_every,
        pace=args.pace,
        seed=args.seed,
        llm=args.llm,
        arms=arms,
        coordinator=args.coordinator,
        repeats=max(getattr(args, "seeds", 1), 1),
    )
    return run_study(study, args, command, also_writes)

"""Where prompt evolution's gain comes from: each operator's share, measured.

For every category of the trivia set and seeds 0-2, one evolver per run
(the simulated LLM, its uninformed rewriter) evolves from the static prompt;
the figure is held-out accuracy (the nodes' held-out questions) of the best
prompt minus the static prompt's. Per operator: its credit (how much it
raised the validation best when its candidate became the best, summed), the
gain with every operator but it (leave-one-out), and the gain with it alone.

    python bench/evolve_operators.py
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import time

from metamesh.learners.evolve.evolver import STRATEGIES, EvolveConfig, PromptEvolver
from metamesh.learners.evolve.genome import STATIC_PROMPT
from metamesh.learners.evolve.simulated import EvolvingLLM
from metamesh.learners.prompts.dataset import builtin_trivia, by_category, held_out_split

SEEDS = (0, 1, 2)


async def run(strategies: tuple[str, ...], category: str, seed: int) -> tuple[float, dict[str, float], int]:
    qs = builtin_trivia()
    held = [q for q in held_out_split(qs, 20) if q.category == category]
    ids = {q.id for q in held}
    train = [q for q in by_category(qs)[category] if q.id not in ids]
    llm = EvolvingLLM(qs, seed=seed)
    ev = PromptEvolver(llm, category, train, config=EvolveConfig(seed=seed, strategies=strategies))
    static = await ev.accuracy(held * 3, STATIC_PROMPT)
    while await ev.step():
        pass
    return await ev.accuracy(held * 3) - static, ev.credit, ev.calls


def gains(strategies: tuple[str, ...]) -> tuple[list[float], dict[str, float], list[int]]:
    out, credit, calls = [], dict.fromkeys(STRATEGIES, 0.0), []
    for cat in sorted(by_category(builtin_trivia())):
        for seed in SEEDS:
            g, c, n = asyncio.run(run(strategies, cat, seed))
            out.append(g)
            calls.append(n)
            for k, v in c.items():
                credit[k] += v
    return out, credit, calls


def main() -> int:
    started = time.perf_counter()
    every, credit, calls = gains(STRATEGIES)
    total = sum(credit.values())
    print(
        f"all operators: held-out gain median {statistics.median(every):+.3f} over {len(every)} runs, "
        f"mean {statistics.mean(every):+.3f}, {statistics.median(calls):.0f} LLM calls (median)\n"
    )
    print("| operator | share of the validation gain (credit) | held-out gain without it | with it alone |")
    print("| --- | --- | --- | --- |")
    for op in STRATEGIES:
        without, _, _ = gains(tuple(s for s in STRATEGIES if s != op))
        alone, _, _ = gains((op,))
        share = credit[op] / total
        print(f"| {op} | {share:.0%} | {statistics.mean(without):+.3f} | {statistics.mean(alone):+.3f} |")
    print(f"\n(held-out gains are means over {len(every)} runs; took {time.perf_counter() - started:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""How the learned braid policy compares with the best single model across seed sets (torch).

For each seed set, four learners in process, each mostly on one task type
(as ``metamesh experiment braid``), average their policies after every round
(the in-process FedAvg of ``tests/braid/test_learning.py``). Each node's greedy
policy is then scored on the held-out tasks of every budget, beside the best
single model of each budget on the same tasks and answers, and counted:

- mixed stream: mean quality over the budgets above the single models' mean,
  and mean cost at or below theirs (what the tests assert);
- per budget: quality above, and cost at or below, that budget's single model.

Run: ``python bench/braid_seeds.py`` (seed sets 0, 10, …, 50, 24 rounds: about 3 min)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from metamesh.experiments.braid import node_mix
from metamesh.learners.braid.evaluate import best_single, heldout
from metamesh.learners.braid.fusion import SimulatedBackend
from metamesh.learners.braid.learner import BraidConfig, BraidLearner
from metamesh.learners.braid.pool import SIMULATED_POOL as POOL
from metamesh.learners.braid.tasks import TaskStream, parse_mix

BUDGETS = (1.5, 4.0, 10.0)
LATENCY_LIMIT_MS = 3000.0
NODES = 4


def federated_run(base: int, rounds: int, backend: SimulatedBackend) -> list[BraidLearner]:
    nodes = [
        BraidLearner(
            POOL,
            backend,
            TaskStream(
                parse_mix(node_mix(i)), budgets=BUDGETS, latency_limit_ms=LATENCY_LIMIT_MS, seed=base + i
            ),
            BraidConfig(seed=base + i),
        )
        for i in range(NODES)
    ]
    for _ in range(rounds):
        for node in nodes:
            node.train_round()
        weights = [n.weights() for n in nodes]
        avg = {k: np.mean([w[k] for w in weights], axis=0) for k in weights[0]}
        for n in nodes:
            base_w = n.base_weights()
            n.apply_average(
                {k: avg[k] - base_w[k] for k in avg}, new_version=n.version + 1, contributors=[], now=0.0
            )
    return nodes


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--seeds", default="0,10,20,30,40,50", help="first seed of each set (default 0,10,...,50)"
    )
    parser.add_argument("--rounds", type=int, default=24, help="rounds per node (default 24)")
    args = parser.parse_args()
    backend = SimulatedBackend(POOL)
    tasks = {b: heldout(b, LATENCY_LIMIT_MS) for b in BUDGETS}
    singles = {b: best_single(tasks[b], POOL, backend)[1] for b in BUDGETS}
    single_q = float(np.mean([s.quality for s in singles.values()]))
    single_c = float(np.mean([s.cost for s in singles.values()]))
    rows: list[tuple[list[float], list[float]]] = []
    started = time.perf_counter()
    for base in (int(s) for s in args.seeds.split(",")):
        for node in federated_run(base, args.rounds, backend):
            summaries = [node.evaluate(tasks[b]) for b in BUDGETS]
            rows.append(([s.quality for s in summaries], [s.cost for s in summaries]))
        print(f"seed set {base}: done ({time.perf_counter() - started:.0f} s)", flush=True)
    n = len(rows)
    mixed_q = [float(np.mean(q)) for q, _ in rows]
    mixed_c = [float(np.mean(c)) for _, c in rows]
    print(f"\n{n} federated policies against the best single model of each budget, on the same tasks\n")
    print(
        f"mixed stream, quality above the single models ({min(mixed_q):.3f}-{max(mixed_q):.3f} "
        f"against {single_q:.3f}): {sum(q > single_q for q in mixed_q)} of {n}"
    )
    print(
        f"mixed stream, mean cost at or below theirs ({min(mixed_c):.2f}-{max(mixed_c):.2f} "
        f"against {single_c:.2f}): {sum(c <= single_c + 1e-9 for c in mixed_c)} of {n}"
    )
    for i, b in enumerate(BUDGETS):
        s = singles[b]
        better = sum(q[i] > s.quality for q, _ in rows)
        cheaper = sum(c[i] <= s.cost + 1e-9 for _, c in rows)
        print(
            f"budget {b:>4g}: quality above {s.quality:.3f} on {better} of {n}, "
            f"cost at or below {s.cost:.2f} on {cheaper} of {n}"
        )


if __name__ == "__main__":
    main()

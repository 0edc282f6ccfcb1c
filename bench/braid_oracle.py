"""How much the braid reward leaves on the table: the best fixed rule per task type, in hindsight.

For each budget of ``metamesh experiment braid`` and each task type, every
fixed rule the pool allows is run on the experiment's held-out tasks of that
type: each single model, each equal-weight vote of 2 or 3 models, and each
cascade of 2 or 3 models (cheapest first) at each threshold. The rule with
the best mean reward is kept. Routers are left out, so this is a lower bound
on the best fixed rules. The choice is made on the very tasks it is scored
on, with their answers known: an upper reference no learner can be expected
to reach, printed beside the best single model of the same run, to show
whether a gap is the reward's (the optimum itself pays more) or the
learner's.

Run: ``python bench/braid_oracle.py`` (no torch needed; about 10 s)
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from metamesh.node.braid.evaluate import Reward, best_single, heldout
from metamesh.node.braid.fusion import THRESHOLDS, Decision, SimulatedBackend, execute
from metamesh.node.braid.plan import Planner
from metamesh.node.braid.pool import SIMULATED_POOL as POOL
from metamesh.node.braid.tasks import Task

BUDGETS = (1.5, 4.0, 10.0)
LATENCY_LIMIT_MS = 3000.0


def rules(task: Task, planned: np.ndarray) -> Iterator[Decision]:
    plan = Planner(POOL, task, planned)
    fits = [m for m in range(len(POOL)) if plan.fits[m]]
    for m in fits:
        yield Decision("single", (m,))
    for k in (2, 3):
        for group in itertools.combinations(fits, k):
            if plan._ok(group, sequential=False):
                yield Decision("vote", group, weights=(1 / k,) * k)
            if plan._ok(group, sequential=True):
                order = tuple(sorted(group, key=lambda m: (POOL[m].cost, POOL[m].latency_ms)))
                for threshold in THRESHOLDS:
                    yield Decision("cascade", order, threshold=threshold)


def main() -> None:
    backend, reward = SimulatedBackend(POOL), Reward()
    planned = np.array([1.5 * m.latency_ms for m in POOL])  # the prior the baselines plan with
    started = time.perf_counter()
    print(f"{'budget':>6}  {'best rule per type, in hindsight':>34}  {'best single model':>32}")
    for budget in BUDGETS:
        tasks = heldout(budget, LATENCY_LIMIT_MS)
        by_type: dict[str, list[Task]] = defaultdict(list)
        for task in tasks:
            by_type[task.type].append(task)
        quality = cost = total = 0.0
        chosen = []
        for kind, group in sorted(by_type.items()):
            sums: dict[str, list[float]] = defaultdict(lambda: [0.0, 0.0, 0.0, 0.0])
            for task in group:
                for rule in rules(task, planned):
                    out = execute(rule, task, POOL, backend)
                    s = sums[rule.describe(POOL)]
                    s[0] += out.quality
                    s[1] += out.cost
                    s[2] += reward(task, out.quality, out)
                    s[3] += 1
            name, (q, c, r, _) = max(
                ((k, v) for k, v in sums.items() if v[3] == len(group)), key=lambda kv: kv[1][2]
            )
            quality, cost, total = quality + q, cost + c, total + r
            chosen.append(f"    {kind}: {name}")
        n = len(tasks)
        single_name, single = best_single(tasks, POOL, backend, reward)
        print(
            f"{budget:>6g}  {quality / n:>12.3f} at {cost / n:4.2f} (reward {total / n:.3f})"
            f"  {single.quality:>10.3f} at {single.cost:4.2f} (reward {single.reward:.3f}, {single_name})"
        )
        print("\n".join(chosen))
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()

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
learner's. Each type's rule is printed with its lead in reward over the next
best rule, and the best budget-10 rules without the largest model: how flat
the reward is near its optimum, which is what a learner rated in whole stars
has to resolve.

Run: ``python bench/braid_oracle.py`` (no torch needed; about 10 s)
"""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from collections.abc import Iterator

import numpy as np

from metamesh.learners.braid.evaluate import Reward, best_single, heldout
from metamesh.learners.braid.fusion import THRESHOLDS, Decision, SimulatedBackend, execute
from metamesh.learners.braid.plan import Planner
from metamesh.learners.braid.pool import SIMULATED_POOL as POOL
from metamesh.learners.braid.tasks import Task

BUDGETS = (1.5, 4.0, 10.0)
LARGEST = max(range(len(POOL)), key=lambda m: POOL[m].cost)
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
        best = np.zeros(3)  # quality, cost, reward: summed over the tasks
        without = np.zeros(3)  # the same, with no rule that calls the largest model
        chosen = []
        for kind, group in sorted(by_type.items()):
            sums: dict[str, np.ndarray] = defaultdict(lambda: np.zeros(4))
            uses_largest: dict[str, bool] = {}
            for task in group:
                for rule in rules(task, planned):
                    out = execute(rule, task, POOL, backend)
                    name = rule.describe(POOL)
                    sums[name] += (out.quality, out.cost, reward(task, out.quality, out), 1)
                    uses_largest[name] = LARGEST in rule.models
            complete = {k: v[:3] for k, v in sums.items() if v[3] == len(group)}
            name = max(complete, key=lambda k: complete[k][2])
            best += complete[name]
            without += max((v for k, v in complete.items() if not uses_largest[k]), key=lambda v: v[2])
            runner_up = max(v[2] for k, v in complete.items() if k != name)
            gap = (complete[name][2] - runner_up) / len(group)
            chosen.append(f"    {kind}: {name} (reward {gap:+.3f} over the next best rule)")
        n = len(tasks)
        single_name, single = best_single(tasks, POOL, backend, reward)
        print(
            f"{budget:>6g}  {best[0] / n:>12.3f} at {best[1] / n:4.2f} (reward {best[2] / n:.3f})"
            f"  {single.quality:>10.3f} at {single.cost:4.2f} (reward {single.reward:.3f}, {single_name})"
        )
        print("\n".join(chosen))
        if (without != best).any():
            print(
                f"    without {POOL[LARGEST].name}: {without[0] / n:.3f} at {without[1] / n:.2f}"
                f" (reward {without[2] / n:.3f})"
            )
    print(f"({time.perf_counter() - started:.1f} s)")


if __name__ == "__main__":
    main()

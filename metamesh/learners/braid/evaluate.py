"""The reward, held-out evaluation, and the fixed baselines a learned policy is measured against.

Baselines (no torch): the best single model in hindsight (the single model
with the highest held-out quality among those that fit the limits), a
uniform ensemble (an equal-weight vote of as many models as fit, cheapest
first) and random (a uniformly random decision within the limits). Two
lookups from task type to one model, chosen on separate *selection* tasks
(never the held-out ones), are what a skeptic builds with no learning at all
(:func:`type_lookup`): the model of best reward per type, and the cheapest
model within ``QUALITY_TOLERANCE`` of the best quality per type.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from .fusion import Backend, Decision, Outcome, execute
from .plan import Planner, Scores, decide, sampler
from .pool import ModelDescriptor
from .tasks import DEFAULT_MIX, Task, eval_tasks

__all__ = [
    "HELDOUT_SEED",
    "HELDOUT_TASKS",
    "QUALITY_TOLERANCE",
    "SELECTION_SEED",
    "Reward",
    "Summary",
    "best_single",
    "heldout",
    "random_policy",
    "selection",
    "summarise",
    "type_lookup",
    "uniform_ensemble",
]

#: The final held-out set every node and baseline is measured on, per budget (the same tasks and
#: simulated answers everywhere).
HELDOUT_SEED = 5
HELDOUT_TASKS = 300


#: The tasks the per-type lookups are chosen on: an evaluation set apart from the held-out one.
SELECTION_SEED = 17
#: The cheapest-per-type lookup takes the cheapest model whose quality on a type is within this of
#: the best model's on that type.
QUALITY_TOLERANCE = 0.02


def heldout(budget: float, latency_limit_ms: float, mix: Mapping[str, float] = DEFAULT_MIX) -> list[Task]:
    return eval_tasks(HELDOUT_TASKS, mix, budget=budget, latency_limit_ms=latency_limit_ms, seed=HELDOUT_SEED)


def selection(budget: float, latency_limit_ms: float, mix: Mapping[str, float] = DEFAULT_MIX) -> list[Task]:
    """Tasks to choose a baseline's models on, never the held-out ones."""
    return eval_tasks(
        HELDOUT_TASKS, mix, budget=budget, latency_limit_ms=latency_limit_ms, seed=SELECTION_SEED
    )


Policy = Callable[[Task], Decision]


@dataclass(frozen=True, slots=True)
class Reward:
    """quality - cost_weight * cost/budget - latency_weight * latency/limit (limits are hard)."""

    cost_weight: float = 0.2
    latency_weight: float = 0.1

    def __call__(self, task: Task, quality: float, outcome: Outcome) -> float:
        return (
            quality
            - self.cost_weight * outcome.cost / task.budget
            - self.latency_weight * outcome.latency_ms / task.latency_limit_ms
        )


@dataclass(slots=True)
class Summary:
    tasks: int = 0
    quality: float = 0.0
    cost: float = 0.0
    latency_ms: float = 0.0
    reward: float = 0.0
    within_budget: float = 0.0
    within_latency: float = 0.0
    strategies: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {
            "tasks": self.tasks,
            "quality": round(self.quality, 4),
            "cost": round(self.cost, 4),
            "latency_ms": round(self.latency_ms, 1),
            "reward": round(self.reward, 4),
            "within_budget": round(self.within_budget, 4),
            "within_latency": round(self.within_latency, 4),
            "strategies": dict(self.strategies),
        }


def summarise(
    policy: Policy,
    tasks: Sequence[Task],
    pool: Sequence[ModelDescriptor],
    backend: Backend,
    reward: Reward | None = None,
) -> Summary:
    """Run ``policy`` on every task and average what came of it."""
    reward = reward or Reward()
    q, c, lat, r, in_b, in_l = [], [], [], [], 0, 0
    strategies: Counter[str] = Counter()
    for task in tasks:
        decision = policy(task)
        outcome = execute(decision, task, pool, backend)
        q.append(outcome.quality)
        c.append(outcome.cost)
        lat.append(outcome.latency_ms)
        r.append(reward(task, outcome.quality, outcome))
        in_b += outcome.cost <= task.budget * (1 + 1e-9)
        in_l += outcome.latency_ms <= task.latency_limit_ms
        strategies[decision.strategy] += 1
    n = max(len(tasks), 1)
    return Summary(
        tasks=len(tasks),
        quality=float(np.mean(q)) if q else 0.0,
        cost=float(np.mean(c)) if c else 0.0,
        latency_ms=float(np.mean(lat)) if lat else 0.0,
        reward=float(np.mean(r)) if r else 0.0,
        within_budget=in_b / n,
        within_latency=in_l / n,
        strategies=dict(strategies),
    )


def _prior_latency(pool: Sequence[ModelDescriptor]) -> np.ndarray:
    return np.array([1.5 * m.latency_ms for m in pool])


def best_single(
    tasks: Sequence[Task], pool: Sequence[ModelDescriptor], backend: Backend, reward: Reward | None = None
) -> tuple[str, Summary]:
    """The single model with the highest quality on ``tasks`` among those within every task's limits."""
    planned = _prior_latency(pool)
    best: tuple[str, Summary] | None = None
    for m, desc in enumerate(pool):
        if not all(Planner(pool, t, planned).fits[m] for t in tasks):
            continue
        s = summarise(lambda _t, m=m: Decision("single", (m,)), tasks, pool, backend, reward)  # type: ignore[misc]
        if best is None or (s.quality, -s.cost) > (best[1].quality, -best[1].cost):
            best = (desc.name, s)
    if best is None:
        raise ValueError("no single model fits these tasks' limits")
    return best


def uniform_ensemble(pool: Sequence[ModelDescriptor]) -> Policy:
    """An equal-weight vote of as many models as fit, cheapest first (a single model if only one fits)."""
    planned = _prior_latency(pool)

    def policy(task: Task) -> Decision:
        plan = Planner(pool, task, planned)
        chosen: list[int] = []
        for m in sorted(np.flatnonzero(plan.fits), key=lambda m: pool[int(m)].cost):
            if plan.cost[[*chosen, int(m)]].sum() <= plan.budget:
                chosen.append(int(m))
        if len(chosen) < 2:
            return Decision("single", (chosen[0],))
        return Decision("vote", tuple(chosen), weights=tuple([1.0 / len(chosen)] * len(chosen)))

    return policy


def random_policy(pool: Sequence[ModelDescriptor], seed: int = 0) -> Policy:
    """Uniformly random choices at every step of a decision, within the limits."""
    planned = _prior_latency(pool)
    pick = sampler(np.random.default_rng(seed))
    n = len(pool)

    def policy(task: Task) -> Decision:
        flat = Scores(np.zeros(4), np.zeros(2), np.zeros(3), [np.zeros(n)] * (len(task.parts) + 1))
        return decide(Planner(pool, task, planned), task, flat, pick)[0]

    return policy


def type_lookup(
    tasks: Sequence[Task],
    pool: Sequence[ModelDescriptor],
    backend: Backend,
    *,
    cheapest: bool = False,
    reward: Reward | None = None,
) -> tuple[dict[str, str], Policy]:
    """A lookup from task type to one model, chosen on ``tasks`` (a selection set), and it as a policy.

    Per type, among the models within the limits of every task of that type:
    the highest reward, or with ``cheapest`` the lowest cost whose quality is
    within :data:`QUALITY_TOLERANCE` of the best quality. A type the selection
    set lacks gets the model chosen over all of its tasks. Raises ValueError
    when no model fits a type's limits.
    """
    planned = _prior_latency(pool)
    by_type: dict[str, list[Task]] = {}
    for t in tasks:
        by_type.setdefault(t.type, []).append(t)

    def choose(group: Sequence[Task]) -> int:
        fits = [m for m in range(len(pool)) if all(Planner(pool, t, planned).fits[m] for t in group)]
        if not fits:
            raise ValueError(f"no single model fits the limits of these {group[0].type} tasks")
        runs = {
            m: summarise(lambda _t, m=m: Decision("single", (m,)), group, pool, backend, reward)  # type: ignore[misc]
            for m in fits
        }
        if not cheapest:
            return max(fits, key=lambda m: (runs[m].reward, -runs[m].cost))
        top = max(r.quality for r in runs.values())
        good = [m for m in fits if runs[m].quality >= top - QUALITY_TOLERANCE]
        return min(good, key=lambda m: (runs[m].cost, -runs[m].quality))

    table = {kind: choose(group) for kind, group in sorted(by_type.items())}
    fallback = choose(tasks)

    def policy(task: Task) -> Decision:
        return Decision("single", (table.get(task.type, fallback),))

    return {kind: pool[m].name for kind, m in table.items()}, policy

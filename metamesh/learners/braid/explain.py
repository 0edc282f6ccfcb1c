"""Why a decision was made: the alternatives' probabilities, what the limits closed, and its drivers.

Drivers are gradient x input attributions of the decision's log-probability
(the chosen strategy and the first chosen model) to the named inputs: the
task's features and the chosen model's features. An input that is zero
(a capability the task does not need) cannot drive anything, so every
driver named is an input of this decision with its value.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .fusion import STRATEGIES, Decision
from .plan import Planner, decide, greedy, masked_softmax
from .policy import PAIR_FEATURES, BraidPolicy, contexts, encode
from .pool import MODEL_FEATURES, ModelDescriptor
from .ratings import RatingTable
from .tasks import TASK_FEATURES, Task

__all__ = ["Driver", "Explanation", "explain"]


@dataclass(frozen=True, slots=True)
class Driver:
    feature: str
    value: float
    attribution: float


@dataclass(frozen=True, slots=True)
class Explanation:
    task: Task
    decision: Decision
    pool: tuple[ModelDescriptor, ...]
    strategies: dict[str, float]
    """Probability of each strategy the limits left open."""
    models: dict[str, float]
    """Probability of each open model as the first (or only) choice."""
    closed: dict[str, str]
    """Alternatives the limits ruled out, and why."""
    drivers: tuple[Driver, ...]

    def __str__(self) -> str:
        chosen = self.decision.strategy
        lines = [
            f"{self.task.describe()}",
            f"  decision: {self.decision.describe(self.pool)}",
            "  strategy: "
            + ", ".join(f"{s} {p:.2f}" + (" <" if s == chosen else "") for s, p in self.strategies.items()),
            "  models:   " + ", ".join(f"{m} {p:.2f}" for m, p in self.models.items()),
        ]
        if self.closed:
            lines.append(
                "  ruled out by the limits: " + "; ".join(f"{k} ({v})" for k, v in self.closed.items())
            )
        lines.append(
            "  driven by: "
            + ", ".join(f"{d.feature}={d.value:.3g} ({d.attribution:+.2f})" for d in self.drivers)
        )
        return "\n".join(lines)


def _closed(plan: Planner, pool: Sequence[ModelDescriptor], task: Task, smask: np.ndarray) -> dict[str, str]:
    out: dict[str, str] = {}
    for m, desc in enumerate(pool):
        if desc.cost > task.budget:
            out[desc.name] = f"cost {desc.cost:g} > budget {task.budget:g}"
        elif plan.lat[m] > task.latency_limit_ms:
            out[desc.name] = f"planned latency {plan.lat[m]:,.0f} ms > limit"
    for s, open_ in zip(STRATEGIES, smask, strict=True):
        if not open_:
            out[s] = "the task has one part" if s == "router" else "no two models fit the limits together"
    return out


def explain(
    policy: BraidPolicy,
    task: Task,
    pool: Sequence[ModelDescriptor],
    planned_ms: np.ndarray,
    ratings: RatingTable | None = None,
    *,
    top: int = 5,
) -> Explanation:
    """The greedy decision for ``task`` and why; see the module docstring."""
    plan = Planner(pool, task, planned_ms)
    scores = policy.scores([task], pool, planned_ms, ratings)[0]
    decision, trace = decide(plan, task, scores, greedy)
    smask = trace.strategy.mask
    sp = masked_softmax(scores.strategy, smask)
    first = trace.models[0]
    mp = masked_softmax(scores.models[first.context], first.mask)
    task_x, model_x = encode(contexts(task), pool, planned_ms, ratings)
    tx = torch.from_numpy(task_x).requires_grad_(True)
    mx = torch.from_numpy(model_x).requires_grad_(True)
    heads = policy(tx, mx)
    smask_t = torch.from_numpy(smask)
    objective = torch.log_softmax(heads.strategy[0].masked_fill(~smask_t, float("-inf")), -1)[
        trace.strategy.index
    ]
    mmask_t = torch.from_numpy(first.mask)
    objective = (
        objective
        + torch.log_softmax(heads.models[first.context].masked_fill(~mmask_t, float("-inf")), -1)[first.index]
    )
    objective.backward()
    assert tx.grad is not None and mx.grad is not None
    drivers = [
        Driver(name, float(task_x[0, i]), float(task_x[0, i] * tx.grad[0, i]))
        for i, name in enumerate(TASK_FEATURES)
    ]
    names = (*MODEL_FEATURES, *PAIR_FEATURES)
    for m in sorted(set(decision.models)):
        x, g = model_x[first.context, m], mx.grad[first.context, m]
        drivers += [
            Driver(f"{pool[m].name}.{n}", float(x[i]), float(x[i] * g[i])) for i, n in enumerate(names)
        ]
    drivers = sorted((d for d in drivers if d.value != 0), key=lambda d: -abs(d.attribution))[:top]
    return Explanation(
        task=task,
        decision=decision,
        pool=tuple(pool),
        strategies={s: float(p) for s, p, o in zip(STRATEGIES, sp, smask, strict=True) if o},
        models={pool[m].name: float(mp[m]) for m in np.argsort(-mp) if first.mask[m]},
        closed=_closed(plan, pool, task, smask),
        drivers=tuple(drivers),
    )

"""The braid learner as a node sees it: the experts' federation, plus a final report.

Policies travel exactly as experts weights do (offsets from shared initial
weights, averaged with the exchange domain's peers, with the same rules,
screens and privacy); see :mod:`metamesh.learners.experts.node_learner`. Deltas
are named ``braid-<pool digest>``, so only nodes with the same pool average
their policies. When the node has run its rounds it logs ``braid_eval``:
its greedy policy on fixed held-out tasks under each budget, sample
explanations, and a few-shot check on a task type it never trained on.
"""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import numpy as np

from metamesh.learners.experts.node_learner import ExpertNodeConfig, ExpertNodeLearner

from .evaluate import HELDOUT_SEED, Summary, heldout
from .learner import BraidLearner, simulated_stars
from .tasks import Task, TaskStream, eval_tasks

__all__ = ["FEW_SHOT", "NEW_TYPE", "BraidNodeLearner", "few_shot", "final_report"]

NEW_TYPE = "legal"
FEW_SHOT = 8


class BraidNodeLearner(ExpertNodeLearner):
    def __init__(self, learner: BraidLearner, config: ExpertNodeConfig) -> None:
        super().__init__(learner, config)
        self.braid = learner

    async def step(self) -> None:
        finished = self.done
        await super().step()
        if self.done and not finished:
            report = await asyncio.to_thread(final_report, self.braid)
            # before "done": whoever waits for "done" in the event log finds the report there
            at = next((i for i, (name, _) in enumerate(self._events) if name == "done"), len(self._events))
            self._events.insert(at, ("braid_eval", report))


def new_type_tasks(learner: BraidLearner, n: int, seed: int, purpose: str = "train") -> list[Task]:
    """Tasks of :data:`NEW_TYPE` under each of the learner's budgets in turn."""
    cfg = learner.config
    stream = TaskStream(
        {NEW_TYPE: 1.0},
        budgets=cfg.budgets,
        latency_limit_ms=cfg.latency_limit_ms,
        seed=seed,
        purpose=purpose,
    )
    return [next(stream) for _ in range(n)]


def new_type_summary(learner: BraidLearner) -> Summary:
    """The learner's greedy policy on 300 held-out tasks of :data:`NEW_TYPE`."""
    return learner.evaluate(new_type_tasks(learner, 300, HELDOUT_SEED, "eval"))


def few_shot(learner: BraidLearner, *, shots: int = FEW_SHOT, seed: int = 0) -> Summary:
    """Adapt ``learner`` to :data:`NEW_TYPE` from ``shots`` rated tasks; then its results on that type."""
    rng = np.random.default_rng(seed)
    rated = []
    for task in new_type_tasks(learner, shots, seed):
        ident, _ = learner.decide(task)
        rated.append((ident, float(simulated_stars(learner.run(ident).quality, rng))))
    learner.adapt(rated)
    return new_type_summary(learner)


def final_report(learner: BraidLearner) -> dict[str, Any]:
    """Held-out results per budget, three explained decisions, and the few-shot check (on a copy)."""
    cfg = learner.config
    budgets: dict[str, Any] = {}
    for b in cfg.budgets:
        budgets[f"{b:g}"] = learner.evaluate(heldout(b, cfg.latency_limit_ms)).as_dict()
    samples = [
        eval_tasks(1, {kind: 1.0}, budget=b, latency_limit_ms=cfg.latency_limit_ms, seed=HELDOUT_SEED)[0]
        for kind, b in (
            ("code", cfg.budgets[0]),
            ("qa", cfg.budgets[-1]),
            ("multi", cfg.budgets[len(cfg.budgets) // 2]),
        )
    ]
    explanations = [str(learner.explain(t)) for t in samples]
    before = new_type_summary(learner)
    after = few_shot(copy.deepcopy(learner))
    return {
        "tasks": learner.tasks,
        "limits": dict(learner.limits),
        "budgets": budgets,
        "explanations": explanations,
        "new_type": {
            "type": NEW_TYPE,
            "shots": FEW_SHOT,
            "before": before.as_dict(),
            "after": after.as_dict(),
        },
    }

"""What this node's users said of each model on each task type: the policy's memory of its ratings.

Per (task type, model): the rated performance of decisions that called the
model, shrunk towards 0.5 by two pseudo-ratings, and how many there were.
These are inputs of the policy, so it learns a rule over them ("call the
model rated best here, unless it costs too much for the budget") rather than
a fixed table, and a rule learned on known types applies to a new type as
soon as a few ratings of it are in: that is how a trained policy adapts to a
new task type from a handful of examples. A rating is of the whole answer,
so every model a vote or router called shares it; a cascade's rating goes to
the model whose answer was kept.

Counts are capped at ``cap`` (older ratings weigh less past it), so a model
that changes is noticed. The table is the node's own: it is checkpointed, not
shared.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

__all__ = ["RatingTable"]


class RatingTable:
    PRIOR_MEAN = 0.5
    PRIOR_COUNT = 2.0

    def __init__(self, models: int, *, cap: float = 200.0) -> None:
        self.models = models
        self.cap = cap
        self._sum: dict[str, np.ndarray] = {}
        self._count: dict[str, np.ndarray] = {}

    def record(self, kind: str, models: Sequence[int], performance: float) -> None:
        if kind not in self._sum:
            self._sum[kind] = np.zeros(self.models)
            self._count[kind] = np.zeros(self.models)
        s, c = self._sum[kind], self._count[kind]
        for m in set(models):
            if c[m] >= self.cap:
                s[m] *= (self.cap - 1) / self.cap
                c[m] = self.cap - 1
            s[m] += performance
            c[m] += 1

    def features(self, kind: str) -> np.ndarray:
        """``[models, 2]``: the shrunk mean rating, and log(1 + count) / log(1 + cap)."""
        s = self._sum.get(kind, np.zeros(self.models))
        c = self._count.get(kind, np.zeros(self.models))
        mean = (s + self.PRIOR_MEAN * self.PRIOR_COUNT) / (c + self.PRIOR_COUNT)
        return np.stack([mean, np.log1p(c) / math.log1p(self.cap)], axis=1)

    def state(self) -> dict[str, Any]:
        return {"sum": {k: v.tolist() for k, v in self._sum.items()},
                "count": {k: v.tolist() for k, v in self._count.items()}}  # fmt: skip

    def load_state(self, state: dict[str, Any]) -> None:
        sums = {str(k): np.asarray(v, dtype=float) for k, v in state["sum"].items()}
        counts = {str(k): np.asarray(v, dtype=float) for k, v in state["count"].items()}
        if sums.keys() != counts.keys() or any(
            v.shape != (self.models,) for v in (*sums.values(), *counts.values())
        ):
            raise ValueError("rating table is for another pool")
        self._sum, self._count = sums, counts

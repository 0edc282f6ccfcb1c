"""The braid policy: a task encoder and a pool encoder feeding attention over the pool (torch).

Inputs are named (``TASK_FEATURES``; each model's ``MODEL_FEATURES`` plus
three features of the model *for this task*: how well its specialisation
matches what the task needs, and its cost and planned latency as shares of
the task's limits). The decision network is one additive-attention layer:

- each (task, model) pair gets a score, ``v . tanh(W [t, m, t*m])``: these
  are the model logits (which models) and, softmaxed, the attention weights;
- the attended pool summary and the task embedding feed the heads for the
  fusion strategy, its size (models in a vote or cascade), the cascade's
  threshold, and a value baseline for REINFORCE.

Why attention rather than the seed's full transformer or a flat MLP: a
score per (task, model) pair is the same function for every model, so a
policy works for any pool size, a model added to the pool is scored from its
descriptor at once, and the match feature transfers to task types never
trained on (the few-shot test). One layer is enough for pools of a dozen
models; more would need far more feedback than one node's users give.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from .fusion import SIZES, STRATEGIES, THRESHOLDS
from .plan import Scores
from .pool import MODEL_FEATURES, ModelDescriptor, model_features
from .ratings import RatingTable
from .tasks import TASK_FEATURES, Task, task_features

__all__ = ["PAIR_FEATURES", "BraidPolicy", "Heads", "encode"]

PAIR_FEATURES = ("matches_task", "cost_share", "latency_share", "rated", "ratings")
N_MODEL_INPUTS = len(MODEL_FEATURES) + len(PAIR_FEATURES)


@dataclass(slots=True)
class Heads:
    models: torch.Tensor  # [C, M]
    strategy: torch.Tensor  # [C, 4]
    size: torch.Tensor  # [C, 2]
    threshold: torch.Tensor  # [C, 3]
    value: torch.Tensor  # [C]


def contexts(task: Task) -> list[Task]:
    """The task, then each of its parts as the router scores it (only for tasks of several parts)."""
    return [task, *(task.as_part(p) for p in task.parts)] if len(task.parts) > 1 else [task]


def encode(
    tasks: Sequence[Task],
    pool: Sequence[ModelDescriptor],
    planned_ms: np.ndarray,
    ratings: RatingTable | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Feature arrays for a list of contexts: ``[C, T]`` task rows and ``[C, M, F]`` model rows."""
    ratings = ratings or RatingTable(len(pool))
    own = np.array([model_features(m) for m in pool], dtype=np.float32)
    task_x = np.array([task_features(t) for t in tasks], dtype=np.float32)
    model_x = np.empty((len(tasks), len(pool), N_MODEL_INPUTS), dtype=np.float32)
    model_x[:, :, : own.shape[1]] = own
    for c, t in enumerate(tasks):
        needs = set(t.needs)
        rated = ratings.features(t.type)
        for m, desc in enumerate(pool):
            match = len(needs & set(desc.specialisation)) / max(len(needs), 1)
            model_x[c, m, own.shape[1] :] = (
                match,
                min(desc.cost / t.budget, 2.0),
                min(planned_ms[m] / t.latency_limit_ms, 2.0),
                rated[m, 0],
                rated[m, 1],
            )
    return task_x, model_x


class BraidPolicy(nn.Module):  # type: ignore[misc]
    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.task_enc = nn.Sequential(nn.Linear(len(TASK_FEATURES), hidden), nn.Tanh())
        self.model_enc = nn.Sequential(nn.Linear(N_MODEL_INPUTS, hidden), nn.Tanh())
        self.attn = nn.Linear(3 * hidden, hidden)
        self.attn_v = nn.Linear(hidden, 1)
        self.head = nn.Sequential(nn.Linear(2 * hidden, hidden), nn.Tanh())
        self.strategy = nn.Linear(hidden, len(STRATEGIES))
        self.size = nn.Linear(hidden, len(SIZES))
        self.threshold = nn.Linear(hidden, len(THRESHOLDS))
        self.value = nn.Linear(hidden, 1)
        with torch.no_grad():  # a task type or capability never seen has no effect until feedback on it
            first = self.task_enc[0].weight
            for i, name in enumerate(TASK_FEATURES):
                if name.startswith(("type=", "needs:")):
                    first[:, i] = 0.0

    def forward(self, task_x: torch.Tensor, model_x: torch.Tensor) -> Heads:
        t = self.task_enc(task_x)
        m = self.model_enc(model_x)
        te = t.unsqueeze(1).expand_as(m)
        scores = self.attn_v(torch.tanh(self.attn(torch.cat([te, m, te * m], dim=-1)))).squeeze(-1)
        pooled = (torch.softmax(scores, dim=-1).unsqueeze(-1) * m).sum(dim=1)
        h = self.head(torch.cat([t, pooled], dim=-1))
        return Heads(scores, self.strategy(h), self.size(h), self.threshold(h), self.value(h).squeeze(-1))

    def scores(
        self,
        tasks: Sequence[Task],
        pool: Sequence[ModelDescriptor],
        planned_ms: np.ndarray,
        ratings: RatingTable | None = None,
    ) -> list[Scores]:
        """The logits for decisions on ``tasks``, in one forward pass (no gradient)."""
        ctx = [c for t in tasks for c in contexts(t)]
        task_x, model_x = encode(ctx, pool, planned_ms, ratings)
        return self.scores_of(tasks, task_x, model_x)

    def scores_of(self, tasks: Sequence[Task], task_x: np.ndarray, model_x: np.ndarray) -> list[Scores]:
        """:meth:`scores` from already encoded contexts (the tasks' contexts, concatenated)."""
        with torch.no_grad():
            heads = self(torch.from_numpy(task_x), torch.from_numpy(model_x))
        models = heads.models.numpy().astype(np.float64)
        strategy = heads.strategy.numpy().astype(np.float64)
        size = heads.size.numpy().astype(np.float64)
        threshold = heads.threshold.numpy().astype(np.float64)
        out, row = [], 0
        for t in tasks:
            n = len(t.parts) + 1 if len(t.parts) > 1 else 1
            rows = list(models[row : row + n])
            if n == 1:
                rows.append(rows[0])  # a one-part task's only part is the task
            out.append(Scores(strategy[row], size[row], threshold[row], rows))
            row += n
        return out

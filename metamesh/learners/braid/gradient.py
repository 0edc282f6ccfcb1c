"""The braid policy-gradient loss: REINFORCE with a value baseline and an entropy bonus (torch).

A :class:`Pending` is one decided task awaiting its rating: the features the
policy saw and the trace of the choices it sampled; :func:`policy_loss` turns
a batch of rated ones into ``-(r - V) log pi(decision)`` + value loss - entropy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .fusion import Decision, Outcome
from .plan import Trace
from .policy import BraidPolicy
from .tasks import Task

__all__ = ["Pending", "policy_loss"]


@dataclass(slots=True)
class Pending:
    """A decided task awaiting its rating, with what the policy saw and chose."""

    task: Task
    decision: Decision
    trace: Trace
    task_x: np.ndarray
    model_x: np.ndarray
    outcome: Outcome | None = None


def policy_loss(
    policy: BraidPolicy, batch: Sequence[tuple[Pending, float]], *, entropy: float, normalise: bool
) -> torch.Tensor:
    """The loss of one batch of rated decisions; ``normalise`` scales advantages within the batch."""
    task_x = np.concatenate([p.task_x for p, _ in batch])
    model_x = np.concatenate([p.model_x for p, _ in batch])
    heads = policy(torch.from_numpy(task_x), torch.from_numpy(model_x))
    logps, ents, rows = [], [], []
    row = 0
    for p, _ in batch:
        t = p.trace
        lp, ent = _choice(heads.strategy[row], t.strategy.mask, t.strategy.index)
        for head, choice in ((heads.size, t.size), (heads.threshold, t.threshold)):
            if choice is not None:
                lp = lp + _choice(head[row], choice.mask, choice.index)[0]
        for c in t.models:
            mlp, ment = _choice(heads.models[row + c.context], c.mask, c.index)
            lp, ent = lp + mlp, ent + ment / len(t.models)
        logps.append(lp)
        ents.append(ent)
        rows.append(row)
        row += len(p.task_x)
    rewards = torch.tensor([r for _, r in batch], dtype=torch.float32)
    values = heads.value[rows]
    advantage = rewards - values.detach()
    if len(batch) > 1 and normalise:
        advantage = (advantage - advantage.mean()) / (advantage.std() + 1e-6)
    return (
        -(advantage * torch.stack(logps)).mean()
        + 0.5 * ((values - rewards) ** 2).mean()
        - entropy * torch.stack(ents).mean()
    )


def _choice(logits: torch.Tensor, mask: np.ndarray, index: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probability of ``index`` under the masked softmax, and that distribution's entropy."""
    open_ = torch.from_numpy(mask)
    # a finite fill: -inf would make the entropy's gradient NaN (0 * inf) for closed choices
    logp = torch.log_softmax(logits.masked_fill(~open_, -1e9), dim=-1)
    entropy = -(logp.exp() * logp).sum()
    return logp[index], entropy

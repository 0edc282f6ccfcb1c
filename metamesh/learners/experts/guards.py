"""Guards over an experts node's training: early stopping on a validation split, and the DP divergence guard.

No torch here: both watch numbers the learner reports and keep a copy of the
trainable weights worth going back to.

* :class:`EarlyStop` (the local baseline): after every round the node's loss
  on a validation split of its *own* training data (never the test set) is
  recorded; the weights of the best round are kept, and when the node is done
  its model and its reported held-out loss are those of that round.
* :class:`DivergenceGuard` (private runs): the loss on the node's own training
  data is watched after every merge; when it is not finite or above
  ``factor`` times the loss of the starting weights, learning has broken down
  under the noise. The node goes back to its best weights so far and trains
  alone from then on (no more releases, so epsilon stops growing); the
  ``dp_diverged`` event names the round and the epsilon spent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["DivergenceGuard", "EarlyStop"]


def _copy(weights: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {n: np.array(w, dtype=np.float32, copy=True) for n, w in weights.items()}


@dataclass(slots=True)
class EarlyStop:
    """The best round by ``validation_loss`` (a callable of the current model), and its weights."""

    validation_loss: Callable[[], float]
    best_loss: float = math.inf
    best_round: int = 0
    best_heldout: float = math.nan
    best_weights: dict[str, np.ndarray] = field(default_factory=dict)

    def observe(self, round_: int, weights: Mapping[str, np.ndarray], heldout: float) -> bool:
        """Record round ``round_``; True when it is the best so far (its weights are then kept)."""
        loss = self.validation_loss()
        if not (math.isfinite(loss) and loss < self.best_loss):
            return False
        self.best_loss, self.best_round, self.best_heldout = loss, round_, heldout
        self.best_weights = _copy(weights)
        return True


@dataclass(slots=True)
class DivergenceGuard:
    """Trips when the training loss is not finite or above ``factor`` times the starting loss."""

    start_loss: float
    factor: float
    best_weights: dict[str, np.ndarray]
    """The weights to fall back to: the starting weights, until a round does better."""
    best_loss: float = math.inf
    tripped: bool = False

    def __post_init__(self) -> None:
        if not self.factor > 1.0:
            raise ValueError(f"the divergence factor must be above 1, got {self.factor}")
        self.best_weights = _copy(self.best_weights)
        self.best_loss = self.start_loss

    @property
    def limit(self) -> float:
        return self.factor * self.start_loss

    def observe(self, train_loss: float, weights: Mapping[str, np.ndarray]) -> bool:
        """Record the loss after a round; True when it trips (once: later calls return False)."""
        if self.tripped:
            return False
        if math.isfinite(train_loss) and train_loss <= self.limit:
            if train_loss < self.best_loss:
                self.best_loss, self.best_weights = train_loss, _copy(weights)
            return False
        self.tripped = True
        return True

    def event(self, round_: int, epsilon: float | None, train_loss: float) -> dict[str, Any]:
        """The ``dp_diverged`` event's fields."""
        return {
            "round": round_,
            "epsilon": epsilon,
            "train_loss": round(train_loss, 5) if math.isfinite(train_loss) else str(train_loss),
            "start_loss": round(self.start_loss, 5),
            "limit": round(self.limit, 5),
            "fallback_loss": round(self.best_loss, 5),
        }

"""What the experts node learner federates (:class:`DeltaTrainer`) and how (:class:`ExpertNodeConfig`).

No torch here: a trainer is anything with this shape (``ExpertLearner``, the braid policy).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from metamesh.gossip.merge.delta import Rule

from .history import MergeRecord
from .report import ExpertInsight, RoundReport

if TYPE_CHECKING:
    from .shared import DeltaUpdate

__all__ = ["MODEL_NAME", "DeltaTrainer", "ExpertNodeConfig"]

MODEL_NAME = "experts"
"""The ``model`` the experts learner's deltas carry."""


class _TrainerConfig(Protocol):
    @property
    def privacy(self) -> Any: ...
    @property
    def seed(self) -> int: ...


class DeltaTrainer(Protocol):
    """What this module federates: ``ExpertLearner``, and any learner that trains torch weights the same way
    (the braid policy). Calls come from one worker thread; see ``ExpertLearner`` for the cycle."""

    @property
    def config(self) -> _TrainerConfig: ...
    @property
    def domain(self) -> str: ...
    @property
    def version(self) -> int: ...
    @property
    def rounds(self) -> int: ...
    @property
    def samples(self) -> int: ...
    @property
    def trainable(self) -> tuple[str, ...]: ...
    def train_round(self) -> RoundReport: ...
    def heldout_loss(self) -> float: ...
    def insight(self) -> ExpertInsight: ...
    def affinity(self) -> dict[str, float]: ...
    def epsilon(self) -> float: ...
    def learning_rates(self) -> dict[str, float]: ...
    def set_learning_rates(self, rates: Mapping[str, float], /) -> None: ...
    def weights(self) -> dict[str, np.ndarray]: ...
    def base_weights(self) -> dict[str, np.ndarray]: ...
    def delta(self) -> DeltaUpdate: ...
    def apply_average(
        self,
        avg_delta: Mapping[str, np.ndarray],
        *,
        new_version: int,
        contributors: Sequence[str],
        now: float,
    ) -> MergeRecord: ...
    def state(self) -> dict[str, Any]: ...
    def load_state(self, state: Mapping[str, Any], /) -> None: ...


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpertNodeConfig:
    """How the experts learner federates.

    ``exchange_domain`` is where offsets are published and accepted (the
    data's domain by default; one name for every node gives a single global
    average). ``federated=False`` trains alone and publishes insights only.
    ``rounds`` stops training after that many rounds (0: never).
    ``diverge_factor`` > 1 turns on the divergence guard (``guards.DivergenceGuard``;
    0: off): the built-in experts learner sets it on private nodes.
    """

    exchange_domain: str
    federated: bool = True
    rounds: int = 0
    rule: Rule = "fedavg"
    norm_factor: float | None = 3.0
    min_cosine: float | None = None
    staleness_decay: float = 0.5
    max_staleness: int = 4
    poison: str = ""
    """Robustness drills only: corrupt every published offset (scale, flip, nan, random, cycle)."""
    model_name: str = MODEL_NAME
    """The ``model`` of published deltas; offsets of any other model are refused."""
    diverge_factor: float = 0.0
    """Stop federating when the training loss is above this many times its starting value (0: off)."""

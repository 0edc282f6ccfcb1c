"""What an expert-style learner reports: one round's figures and its insight (no torch).

The braid learner reports the same two values, so the experts node learner federates both.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from metamesh.protocol import Insight

__all__ = ["ExpertInsight", "RoundReport", "insight_body"]


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundReport:
    """What one :meth:`ExpertLearner.train_round` did."""

    round: int
    version: int
    epochs: int
    steps: int
    samples: int
    train_loss: float
    heldout_loss: float
    seconds: float
    skipped_steps: int = 0  # steps whose loss was not finite: no update made
    diverged: bool = False  # the round left a non-finite held-out loss and was undone


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpertInsight:
    """What the learner knows, without its data (seed 001's insight).

    ``expert_loss[e]`` is the MSE over the training samples the gate routes
    mainly (argmax) to expert ``e`` and ``expert_samples[e]`` their count; an
    expert with no samples reports loss 0.0. ``metrics`` has ``train_loss``,
    ``heldout_loss``, ``version`` and ``rounds``, plus ``epsilon`` when
    privacy is on and epsilon is finite. Maps one-to-one onto the protocol's
    ``Insight.of(expert_loss, expert_samples, avg_loss=…, total_samples=…, metrics=…)``.
    """

    expert_loss: Mapping[str, float]
    expert_samples: Mapping[str, int]
    avg_loss: float
    total_samples: int
    domain: str
    metrics: Mapping[str, float]


def insight_body(insight: ExpertInsight, round_: int) -> Insight:
    """The protocol's ``Insight`` of a learner's insight after round ``round_``."""
    return Insight.of(
        dict(insight.expert_loss),
        dict(insight.expert_samples),
        avg_loss=insight.avg_loss,
        total_samples=insight.total_samples,
        round=round_,
        metrics=dict(insight.metrics),
    )

"""BraidConfig: how a braid policy learns, the limits it decides within and its evaluation (no torch)."""

from __future__ import annotations

from dataclasses import dataclass, field

from metamesh.learners.experts.privacy import PrivacyConfig

from .evaluate import Reward

__all__ = ["BraidConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class BraidConfig:
    """How a :class:`~metamesh.learners.braid.learner.BraidLearner` learns and is evaluated."""

    hidden: int = 32
    lr: float = 0.003
    batch: int = 16
    tasks_per_round: int = 64
    entropy: float = 0.02
    normalise: bool = True
    """Normalise advantages within a batch (steadier steps whatever the reward's scale)."""
    reward: Reward = field(default_factory=Reward)
    budgets: tuple[float, ...] = (1.5, 4.0, 10.0)
    latency_limit_ms: float = 3000.0
    eval_per_budget: int = 60
    eval_seed: int = 999
    rated: bool = True
    """Learn from a simulated user's 1-5 stars (noisy) rather than the measured quality."""
    privacy: PrivacyConfig | None = None
    seed: int = 0
    init_seed: int = 0
    threads: int = 1

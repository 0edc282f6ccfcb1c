"""The prompt learner's settings: exploration, sharing, the monitor, the baseline arms."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from metamesh.learners.monitor import MonitorConfig
from metamesh.learners.prompts.strategies import DEFAULT_STRATEGIES

__all__ = ["PromptLearnerConfig", "replace_config"]


@dataclass(frozen=True, slots=True, kw_only=True)
class PromptLearnerConfig:
    """How a :class:`~metamesh.learners.prompts.learner.PromptLearner` explores, shares and checks itself."""

    strategies: Mapping[str, str] = field(default_factory=lambda: dict(DEFAULT_STRATEGIES))
    epsilon_start: float = 1.0
    epsilon_floor: float = 0.05
    epsilon_decay: float = 0.97
    """Per visit of a state, own and peers': exploration fades with shared experience."""
    min_tries: int = 6
    """Visits every strategy gets in a state (own and peers' together) before greedy choices."""
    alpha: float | None = None
    federated: bool = True
    visit_weighted: bool = True
    """Merge peers' rows weighted by visits (True) or as a plain mean (False, for comparison)."""
    random_policy: bool = False
    """The baseline arm: always pick a strategy at random."""
    share_change: float = 0.25
    share_visits: int = 4
    keepalive: float = 5.0
    affinity_smoothing: float = 0.05
    seed: int = 0
    monitor: MonitorConfig = field(
        default_factory=lambda: MonitorConfig(cycle=100, warmup_cycles=6, drift_raise=0.3, drift_clear=0.15)
    )
    """The closed-loop monitor over (category, strategy) choices and their scores; the reference
    forms after the warm-up, once exploration has faded. Measured with 6 categories: a settled
    node's cycles diverge 0.03-0.07 from its reference, one whose greedy choice flips in one
    category 0.2, one choosing at random 0.6-0.7; raising at 0.3 flags a changed policy, not a
    changed mind about one near-tie."""
    drift_at: int = 0
    """Robustness drills only: from this episode on, choose strategies at random, as a node whose
    policy was reset or corrupted would (0: never)."""


def replace_config(config: PromptLearnerConfig, **changes: Any) -> PromptLearnerConfig:
    """``config`` with ``changes`` applied (a new frozen value)."""
    return replace(config, **changes)

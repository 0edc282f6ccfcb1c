"""ExpertConfig: how an ExpertLearner learns (no torch)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from metamesh.errors import ConfigError

from .privacy import PrivacyConfig

__all__ = ["ExpertConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class ExpertConfig:
    """How an :class:`ExpertLearner` learns. Raises ConfigError for out-of-range values.

    ``seed`` drives shuffling and DP noise and should differ per node (the
    noise is only as secret as the seed); ``init_seed`` drives the initial
    weights and should be the same across a domain, so all members start
    from one base. ``frozen`` holds parameter-name prefixes matched on
    dot boundaries (``"expert0"`` freezes ``expert0.*``, ``"expert0.fc1"``
    only that layer). The optimizer is SGD with ``momentum`` (the momentum
    buffers survive merges and reset on :meth:`ExpertLearner.set_weights`);
    ``lr`` is the starting rate of every expert and of the gate.
    ``threads`` is passed to ``torch.set_num_threads``, which is
    process-wide.
    """

    n_experts: int = 4
    hidden: int = 32
    lr: float = 0.1
    momentum: float = 0.9
    local_epochs: int = 2
    batch_size: int = 64
    fedprox_mu: float = 0.0
    frozen: tuple[str, ...] = ()
    privacy: PrivacyConfig | None = None
    seed: int = 0
    init_seed: int = 0
    threads: int = 1
    history_len: int = 256

    def __post_init__(self) -> None:
        for name in ("n_experts", "hidden", "local_epochs", "batch_size", "threads", "history_len"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr}")
        if not (math.isfinite(self.fedprox_mu) and self.fedprox_mu >= 0):
            raise ConfigError(f"fedprox_mu must be >= 0, got {self.fedprox_mu}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum}")
        if isinstance(self.frozen, str) or not all(isinstance(p, str) and p for p in self.frozen):
            raise ConfigError(f"frozen must be a tuple of non-empty name prefixes, got {self.frozen!r}")

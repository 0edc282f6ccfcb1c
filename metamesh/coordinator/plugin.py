"""The coordinator's learner, registered as ``coordinator`` in the ``metamesh.learners`` group.

``metamesh coordinator`` runs a node with this learner, built like any other
through the registry, so the node and the learners never import the coordinator.
"""

from __future__ import annotations

from metamesh.coordinator.engine import EngineConfig, MetaEngine
from metamesh.coordinator.learner import CoordinatorLearner
from metamesh.coordinator.memory import InsightMemory
from metamesh.errors import ConfigError
from metamesh.node.config import NodeConfig

__all__ = ["build_learner"]


def build_learner(config: NodeConfig) -> CoordinatorLearner:
    """The meta-engine learner the config's ``meta_*``, ``reptile_step`` and ``memory_*`` settings describe.

    Raises :class:`~metamesh.errors.ConfigError` for out-of-range settings.
    """
    if not 0 < config.reptile_step <= 1:
        raise ConfigError(f"--reptile-step must be in (0, 1], got {config.reptile_step}")
    if config.meta_interval <= 0 or config.meta_keepalive < 1:
        raise ConfigError("--interval must be > 0 and --keepalive >= 1")
    try:
        memory = InsightMemory(
            total=config.memory_total,
            per_domain=config.memory_per_domain,
            per_client=config.memory_per_client,
        )
    except ValueError as exc:
        raise ConfigError(f"memory bounds: {exc}") from exc
    engine = MetaEngine(EngineConfig(reptile_step=config.reptile_step), memory)
    return CoordinatorLearner(engine, interval=config.meta_interval, keepalive=config.meta_keepalive)

"""Build the learner a config names, importing only what that learner needs."""

from __future__ import annotations

from metamesh.errors import ConfigError
from metamesh.node.config import NodeConfig
from metamesh.node.learner import Learner

__all__ = ["build_learner"]


def build_learner(config: NodeConfig) -> Learner | None:
    name = config.learner
    if name in ("", "none"):
        return None
    raise ConfigError(f"unknown learner {name!r}; choose from: none")

"""Build the learner a config names: the registry (``metamesh.learners`` entry points) and its helpers.

The built-in learners' builders are in :mod:`metamesh.learners.builtin`; the
lookup by name is :mod:`metamesh.node.registry`'s, re-exported here.
"""

from __future__ import annotations

from metamesh.learners.builtin import parse_weights
from metamesh.node.registry import GROUP, LearnerBuilder, build_learner, installed_learners

__all__ = ["GROUP", "LearnerBuilder", "build_learner", "installed_learners", "parse_weights"]

"""The learner registry: the ``metamesh.learners`` entry-point group, and building the learner a config names.

Every learner, built-in or from another installed distribution, registers a
builder by name::

    [project.entry-points."metamesh.learners"]
    mylearner = "mypackage.module:build"     # build(config: NodeConfig) -> Learner | None

``metamesh node --learner mylearner`` then runs it. Only the named entry point
is loaded, so building one learner imports nothing of the others; the node finds
learners here, by name, and never imports ``metamesh.learners`` itself.
"""

from __future__ import annotations

from collections.abc import Callable
from importlib.metadata import EntryPoint, entry_points

from metamesh.errors import ConfigError
from metamesh.node.config import NodeConfig
from metamesh.node.learner import Learner

__all__ = ["GROUP", "LearnerBuilder", "build_learner", "installed_learners"]

GROUP = "metamesh.learners"
"""The entry-point group learners register in."""

LearnerBuilder = Callable[[NodeConfig], Learner | None]
"""What an entry point of :data:`GROUP` names: a callable from the node's config to its learner."""


def installed_learners() -> dict[str, EntryPoint]:
    """The learners installed in this environment, by name (the first registration of a name wins)."""
    found: dict[str, EntryPoint] = {}
    for ep in entry_points(group=GROUP):
        found.setdefault(ep.name, ep)
    return found


def build_learner(config: NodeConfig) -> Learner | None:
    """The learner ``config.learner`` names (``""`` is ``none``: no learner, the node only relays).

    Raises :class:`~metamesh.errors.ConfigError` in one line for a name no
    installed distribution registers (listing the installed names), a builder
    that cannot be loaded, or a builder's own refusal of the config.
    """
    name = config.learner or "none"
    installed = installed_learners()
    ep = installed.get(name)
    if ep is None:
        names = ", ".join(sorted(installed)) or "none registered: reinstall metamesh (pip install -e .)"
        raise ConfigError(f"unknown learner {name!r}; installed learners: {names}")
    try:
        builder = ep.load()
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"learner {name!r} ({ep.value}) cannot be loaded: {exc}") from exc
    if not callable(builder):
        raise ConfigError(f"learner {name!r} ({ep.value}) is not a callable builder")
    learner: Learner | None = builder(config)
    return learner

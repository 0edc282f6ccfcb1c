"""The coordinator as a node's learner: it learns about the network, not from data.

``metamesh coordinator`` is an ordinary node whose learner is this one. It
joins every domain its peers announce in their heartbeats, so it hears every
insight, offset and Q-table; it feeds them to the :class:`MetaEngine`; and
once a round (the node's ``pace``) it publishes one ``meta`` on ``_global`` if
anything changed, and again every ``keepalive`` rounds even if nothing did.
The node answers snapshot requests with the latest meta, and so does every
other node that relayed it, so a late joiner gets it at once, coordinator or
not. Its memory and meta-parameters are in the node's checkpoint, written
before each broadcast; the version never goes back, even if the checkpoint
is lost, because the latest version heard from the network counts too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from metamesh.coordinator.engine import MetaEngine
from metamesh.node.learner import Learner, NodeView
from metamesh.protocol import GLOBAL_DOMAIN, Body, Meta

__all__ = ["CoordinatorLearner"]

log = logging.getLogger(__name__)


class CoordinatorLearner(Learner):
    """Runs the meta-engine inside a node (the ``Learner`` protocol)."""

    name = "coordinator"
    publishes = frozenset({"meta"})
    accepts = frozenset({"insight", "delta", "qtable"})

    def __init__(self, engine: MetaEngine, *, interval: float = 1.0, keepalive: int = 10) -> None:
        self.engine = engine
        self.interval = interval
        self.keepalive = keepalive
        self.version = 0
        self.rounds = 0
        self.broadcasts = 0
        self._since_broadcast = 0
        self._pending: list[tuple[str, Body]] = []
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._peer_domains: Callable[[], Iterable[str]] = lambda: ()
        self._dirty = False

    def attach(self, node: NodeView) -> None:
        """Called by the node: the domains to join are those its peers announce."""
        self._peer_domains = node.peer_domains

    # -- the Learner protocol ------------------------------------------------

    async def step(self) -> None:
        await asyncio.sleep(self.interval)
        self.rounds += 1
        self._dirty |= self.engine.update()
        self._since_broadcast += 1
        due = self._dirty or (self.version > 0 and self._since_broadcast >= self.keepalive)
        if not due:
            return
        if self._dirty:
            self.version += 1
        self._dirty = False
        self._since_broadcast = 0
        self.broadcasts += 1
        meta = self.engine.meta(self.version)
        self._pending.append((GLOBAL_DOMAIN, meta))
        self._events.append(
            ("broadcast", {"version": self.version, "params": len(meta.params), "tensors": len(meta.tensors)})
        )

    def share(self) -> list[tuple[str, Body]]:
        out, self._pending = self._pending, []
        return out

    def merge(self, sender: str, domain: str, body: Body) -> None:
        self.engine.observe(sender, domain, body, time.time())

    def apply_meta(self, meta: Meta) -> None:
        """Another coordinator's (or our own from before a lost checkpoint): never go back in version."""
        if meta.version > self.version:
            self.version = meta.version
            self._dirty = True  # our next broadcast supersedes it
            self._events.append(("meta_heard", {"version": meta.version}))

    def affinity(self) -> Mapping[str, float]:
        return dict.fromkeys(self._peer_domains(), 1.0)

    def summary(self) -> Mapping[str, float]:
        return {
            "version": float(self.version),
            "rounds": float(self.rounds),
            "broadcasts": float(self.broadcasts),
            **self.engine.summary(),
        }

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        out, self._events = self._events, []
        return out

    def state(self) -> dict[str, Any]:
        return {"version": self.version, "engine": self.engine.state()}

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            self.engine.load_state(state["engine"])
            self.version = int(state["version"])
        except (KeyError, TypeError, ValueError) as exc:
            log.error("coordinator checkpoint not restored (%s); starting with an empty memory", exc)
            return
        self._dirty = bool(self.engine.inits or self.engine.rates or self.engine.priors)
        self._events.append(
            (
                "restored",
                {
                    "version": self.version,
                    "insights": len(self.engine.memory),
                    "domains": sorted(set(self.engine.inits) | set(self.engine.rates)),
                    "categories": sorted(self.engine.priors),
                },
            )
        )

"""Nodes on the in-memory transport twin: one process, one event loop, no sockets.

``Twin`` starts real :class:`~metamesh.node.runtime.Node` objects whose transport is a
:class:`~metamesh.gossip.memory.MemoryTransport` on one :class:`MemoryNetwork`, and stops them
all at the end. ``eventually`` polls a condition under a deadline (never a sleep as
synchronisation). ``Recorder`` is a learner that keeps what it merged and can refuse or fail.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metamesh.gossip.memory import Faults, MemoryNetwork, MemoryTransport
from metamesh.node.config import load_config
from metamesh.node.learner import Learner, Share
from metamesh.node.runtime import Node
from metamesh.protocol import Body, Insight, Meta, QTable

__all__ = ["Recorder", "Twin", "eventually", "insight", "qtable"]


async def eventually(cond: Callable[[], Any], what: str, timeout: float = 10.0) -> Any:
    """Poll ``cond`` on the loop until it is truthy; fail with ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(0.01)


def insight(loss: float, samples: int = 10) -> Insight:
    return Insight.of({}, {}, avg_loss=loss, total_samples=samples)


def qtable(value: float, visits: float = 1.0) -> QTable:
    import numpy as np

    return QTable(("math",), ("a", "b"), np.full((1, 2), value), np.full((1, 2), visits), 1)


class Recorder(Learner):
    """Keeps every message merged; refuses what ``refuse`` names; raises in merge on ``fail`` kinds."""

    name = "recorder"

    def __init__(
        self,
        *,
        domains: Sequence[str] = ("math",),
        refuse: Callable[[Body], str | None] = lambda body: None,
        fail: frozenset[str] = frozenset(),
        accepts: frozenset[str] | None = None,
    ) -> None:
        self.domains = tuple(domains)
        self.refuse = refuse
        self.fail = fail
        if accepts is not None:
            self.accepts = accepts
        self.merged: list[tuple[str, str, Body]] = []
        self.metas: list[Meta] = []
        self.pending: list[Share] = []

    async def step(self) -> bool:
        return False

    def share(self) -> Sequence[Share]:
        out, self.pending = self.pending, []
        return out

    def validate(self, sender: str, domain: str, body: Body) -> str | None:
        return self.refuse(body)

    def merge(self, sender: str, domain: str, body: Body) -> None:
        if body.KIND in self.fail:
            raise RuntimeError(f"cannot merge a {body.KIND}")
        self.merged.append((sender, domain, body))

    def apply_meta(self, meta: Meta) -> None:
        self.metas.append(meta)

    def affinity(self) -> Mapping[str, float]:
        return dict.fromkeys(self.domains, 1.0)

    def kinds(self) -> list[str]:
        return [body.KIND for _, _, body in self.merged]


class Twin:
    """Nodes on one in-memory network; :meth:`close` stops every one."""

    def __init__(self, home: Path, *, seed: int = 0, faults: Faults | None = None) -> None:
        self.home = home
        self.network = MemoryNetwork(seed=seed, faults=faults)
        self.nodes: list[Node] = []
        self.transports: dict[str, MemoryTransport] = {}

    async def node(
        self,
        name: str,
        *,
        domains: Sequence[str] = ("math",),
        seeds: Sequence[Node] = (),
        learner: Learner | None = None,
        start: bool = True,
        **settings: Any,
    ) -> Node:
        overrides: dict[str, Any] = {
            "home": self.home / name,
            "name": name,
            "domain": list(domains),
            "seed": [s.router_endpoint for s in seeds],
            **settings,
        }
        config = load_config(profile="local", overrides=overrides)
        transport = self.transports[name] = self.network.transport()
        node = Node(config, learner=learner, transport=transport)
        if start:
            await node.start()
        self.nodes.append(node)
        return node

    async def linked(self, a: Node, b: Node, timeout: float = 10.0) -> None:
        """Until ``a`` and ``b`` see each other alive and each is linked to the other's publisher."""
        await eventually(
            lambda: (
                b.id in a.membership.alive()
                and a.id in b.membership.alive()
                and b.pub_endpoint in a.transport.linked()
                and a.pub_endpoint in b.transport.linked()
            ),
            f"{a.id} and {b.id} linked",
            timeout,
        )

    async def line(
        self, *, b_learner: Learner | None = None, c_learner: Learner | None = None
    ) -> tuple[Node, Node, Node]:
        """a - b - c: a and c reach only b (a partition with b in both groups)."""
        a = await self.node("a")
        b = await self.node("b", seeds=[a], learner=b_learner)
        c = await self.node("c", seeds=[b], learner=c_learner)
        t = self.transports
        self.network.partition([t["a"], t["b"]], [t["b"], t["c"]])
        await self.linked(a, b)
        await self.linked(b, c)
        return a, b, c

    async def close(self) -> None:
        for node in reversed(self.nodes):
            await node.stop()

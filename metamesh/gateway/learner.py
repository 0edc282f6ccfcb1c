"""The node's learner when it has a gateway: the prompt learner, plus the decisions awaiting feedback.

:class:`GatewayLearner` is what the node hosts. It shares and merges exactly what the prompt
learner does (Q-tables of the categories' domains, learned state only), joins the domains of the
categories its users ask about, and checkpoints the decision store beside the learner's state so
a restart loses no decision awaiting feedback. Its ``step`` waits for feedback (or, with
``train=True``, runs the prompt learner's own episodes), so a share follows each rating at once.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Mapping, Sequence
from typing import Any

from metamesh.learners.prompts.decisions import Decider
from metamesh.learners.prompts.learner import PromptLearner
from metamesh.node.learner import Learner, NodeView, Share
from metamesh.protocol import Body, Meta

__all__ = ["GatewayLearner"]

#: Seconds a step waits for feedback before the node's loop runs share (keepalives) anyway.
IDLE_STEP = 1.0


class GatewayLearner(Learner):
    """A :class:`PromptLearner` serving an application through a :class:`Decider`."""

    name = "prompts"
    publishes = PromptLearner.publishes
    accepts = PromptLearner.accepts

    def __init__(self, decider: Decider, *, train: bool = False) -> None:
        self.decider = decider
        self.inner = decider.learner
        self.train = train
        self.rated = asyncio.Event()

    def note_feedback(self) -> None:
        """A rating arrived: the next share should go out now."""
        self.rated.set()

    async def step(self) -> bool:
        if self.train:
            await self.inner.step()
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rated.wait(), IDLE_STEP)
        self.rated.clear()
        self.decider.store.expire()
        return True

    def share(self) -> Sequence[Share]:
        return self.inner.share()

    def validate(self, sender: str, domain: str, body: Body) -> str | None:
        return self.inner.validate(sender, domain, body)

    def merge(self, sender: str, domain: str, body: Body) -> None:
        self.inner.merge(sender, domain, body)

    def apply_meta(self, meta: Meta) -> None:
        self.inner.apply_meta(meta)

    def affinity(self) -> Mapping[str, float]:
        return {**self.inner.affinity(), **dict.fromkeys(self.decider.seen, 1.0)}

    def summary(self) -> Mapping[str, float]:
        d = self.decider
        return {**self.inner.summary(), "decisions": d.decided, "ratings": d.rated, "awaiting": len(d.store)}

    def state(self) -> dict[str, Any]:
        return {
            "prompts": self.inner.state(),
            "decisions": self.decider.store.state(),
            "seen": sorted(self.decider.seen),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state(state.get("prompts", {}))
        self.decider.store.load_state(state.get("decisions", []))
        self.decider.seen.update(str(c) for c in state.get("seen", []))

    def attach(self, node: NodeView) -> None:
        self.inner.attach(node)

    def drain_events(self) -> Sequence[tuple[str, dict[str, Any]]]:
        return self.inner.drain_events()

    def drain_blame(self) -> Sequence[tuple[str, str]]:
        return self.inner.drain_blame()

    def weigh_peer(self, peer: str, weight: float) -> None:
        self.inner.weigh_peer(peer, weight)

"""The node's learner when it has a gateway: the prompt learner, plus the decisions awaiting feedback.

:class:`GatewayLearner` is what the node hosts. It shares and merges exactly what the prompt
learner does (Q-tables of the categories' domains, learned state only), joins the domains of the
categories its users ask about, and checkpoints the decision store beside the learner's state so
a restart loses no decision awaiting feedback. :meth:`rate` applies a rating and returns once
it is in the feedback journal on disk (:mod:`metamesh.gateway.journal`), so an accepted rating
survives even a kill before the next checkpoint; :meth:`recover` replays the journal. Its ``step``
waits for feedback (or, with ``train=True``, runs the prompt learner's own episodes), so a share
follows each rating at once.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from metamesh.gateway.journal import FeedbackJournal, Rating
from metamesh.gateway.routing import Router
from metamesh.learners.prompts.decisions import Decider, Decision
from metamesh.learners.prompts.learner import PromptLearner
from metamesh.node.learner import Learner, NodeView, Share
from metamesh.protocol import Body, Meta

__all__ = ["GatewayLearner"]

#: Seconds a step waits for feedback before the node's loop runs share (keepalives) anyway.
IDLE_STEP = 1.0
#: Seconds at least between two steps that follow ratings. The node checkpoints before each share
#: (its whole state, every decision awaiting feedback included), so a share per rating would cost a
#: checkpoint per rating; the journal already makes each rating durable, so ratings are coalesced.
SHARE_EVERY = 0.25
#: States taken for checkpoints whose writes may not have reached the disk yet, plus one: the
#: periodic writer, the writer before a share, and the last one at stop (the others cancelled
#: while their threads still write).
CHECKPOINTS_IN_FLIGHT = 3


class GatewayLearner(Learner):
    """A :class:`PromptLearner` serving an application through a :class:`Decider`."""

    name = "prompts"
    publishes = PromptLearner.publishes
    accepts = PromptLearner.accepts

    def __init__(self, decider: Decider, *, train: bool = False, router: Router | None = None) -> None:
        self.decider = decider
        self.inner = decider.learner
        self.train = train
        self.router = router
        self.rated = asyncio.Event()
        self.journal: FeedbackJournal | None = None
        self.applied = 0
        """``seq`` of the last rating applied to the learner's state (checkpointed with it)."""
        self._taken: collections.deque[int] = collections.deque([0], maxlen=CHECKPOINTS_IN_FLIGHT)
        """``applied`` at the last states taken for checkpoints; the oldest is on disk (see state)."""
        self._stepped = 0.0

    def recover(self, path: Path) -> int:
        """Open the feedback journal at ``path`` and apply the ratings the checkpoint lacks; how many."""
        self.journal = FeedbackJournal(path)
        replayed = 0
        for r in self.journal.replay():
            if r.seq > self.applied:
                self._apply(r.category, r.strategy, r.backend, r.score)
                self.decider.store.pop(r.decision)
                self.applied = r.seq
                replayed += 1
        self.journal.seq = max(self.journal.seq, self.applied)
        self.journal.open()
        return replayed

    def _apply(self, category: str, strategy: str, backend: str, score: float) -> None:
        self.decider.apply(category, strategy, score)
        if self.router is not None and backend:
            self.router.observe(category, backend, score)

    async def rate(
        self, decision_id: str, *, owner: str, score: float | None, reference: str | None
    ) -> tuple[Decision, float]:
        """Apply a rating (see :meth:`Decider.feedback` for its refusals); returns once it is durable."""
        decision, value = self.decider.feedback(decision_id, owner=owner, score=score, reference=reference)
        if self.router is not None and decision.backend:
            self.router.observe(decision.category, decision.backend, value)
        self.note_feedback()
        if self.journal is not None:
            self.applied = seq = self.journal.next_seq()
            await self.journal.append(Rating(seq, decision.id, decision.category, decision.strategy,
                                             decision.backend, value))  # fmt: skip
        return decision, value

    def note_feedback(self) -> None:
        """A rating arrived: the next share should go out now."""
        self.rated.set()

    async def step(self) -> bool:
        if self.train:
            await self.inner.step()
            return True
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.rated.wait(), IDLE_STEP)
        if self.rated.is_set():
            wait = self._stepped + SHARE_EVERY - time.monotonic()
            if wait > 0:
                await asyncio.sleep(wait)  # ratings arriving meanwhile go out with this share
        self.rated.clear()
        self._stepped = time.monotonic()
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
        taken = {
            "prompts": self.inner.state(),
            "decisions": self.decider.store.state(),
            "seen": sorted(self.decider.seen),
            "journal_seq": self.applied,
            "rated": self.decider.rated,
            "routes": self.router.state() if self.router is not None else {},
        }
        # The node writes at most three checkpoints at once (see CHECKPOINTS_IN_FLIGHT), each writer
        # waiting for its own before taking the next: so of the last three states taken before
        # this one, one is on disk, and the journal may drop what the oldest of them holds.
        if self.journal is not None and len(self._taken) == CHECKPOINTS_IN_FLIGHT:
            self.journal.compact(self._taken[0])
        self._taken.append(self.applied)
        return taken

    def load_state(self, state: Mapping[str, Any]) -> None:
        self.inner.load_state(state.get("prompts", {}))
        self.decider.store.load_state(state.get("decisions", []))
        self.decider.seen.update(str(c) for c in state.get("seen", []))
        self.applied = int(state.get("journal_seq", 0))
        self._taken = collections.deque([self.applied], maxlen=CHECKPOINTS_IN_FLIGHT)
        self.decider.rated = int(state.get("rated", 0))
        if self.router is not None:
            self.router.load_state(state.get("routes", {}))

    def attach(self, node: NodeView) -> None:
        self.inner.attach(node)

    def drain_events(self) -> Sequence[tuple[str, dict[str, Any]]]:
        return self.inner.drain_events()

    def drain_blame(self) -> Sequence[tuple[str, str]]:
        return self.inner.drain_blame()

    def weigh_peer(self, peer: str, weight: float) -> None:
        self.inner.weigh_peer(peer, weight)

"""Prompt evolution as a node's learner: evolve per category, share what wins, verify what comes in.

Each ``step`` first scores prompts received from peers (each on local samples;
adopted only if it wins here), then runs one iteration of the next category
still evolving. A category's best prompt is shared in the category's domain
as a ``prompt`` message when it beats what was shared last by
``share_margin`` (send on change); the sender's score travels with it but is
never trusted. When every category has converged the learner evaluates the
static and the evolved prompts on held-out questions, logs ``done`` and goes
on answering peers' prompts.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from metamesh.learners.evolve.evolver import Candidate, EvolveConfig, PromptEvolver
from metamesh.learners.evolve.genome import STATIC_PROMPT
from metamesh.learners.prompts.dataset import Question
from metamesh.llm.base import LLM
from metamesh.node.learner import Learner
from metamesh.protocol import Body, Meta, Prompt

__all__ = ["EvolveLearner"]

log = logging.getLogger(__name__)

#: Received prompts waiting to be scored, at most; more are dropped (a flood costs no LLM calls).
MAX_INBOX = 32
#: Prompts scored per sender and category, at most: scoring spends LLM calls, and a peer
#: must not be able to spend them all (one that improves does not need more).
MAX_PER_SENDER = 8


class EvolveLearner(Learner):
    """See the module docstring; the ``Learner`` protocol of ``metamesh.node.learner``."""

    name = "evolve"
    publishes = frozenset({"prompt"})
    accepts = frozenset({"prompt"})

    def __init__(
        self,
        llm: LLM,
        samples: Sequence[Question],
        *,
        categories: Sequence[str],
        config: EvolveConfig | None = None,
        federated: bool = True,
        share_margin: float = 0.05,
        held_out: Sequence[Question] = (),
    ) -> None:
        self.config = config or EvolveConfig()
        self.federated = federated
        self.share_margin = share_margin
        self.held_out = list(held_out)
        self.evolvers = {c: PromptEvolver(llm, c, samples, config=self.config) for c in categories}
        self._order = list(categories)
        self._next = 0
        self._inbox: list[tuple[str, str, str]] = []  # (sender, category, template)
        self._scored: dict[tuple[str, str], int] = {}  # (sender, category) -> prompts scored
        self._shared: dict[str, float] = {}
        self._events: list[tuple[str, dict[str, Any]]] = []
        self.adopted = 0
        self.refused = 0
        self.done = False

    # -- the Learner protocol ------------------------------------------------

    async def step(self) -> None:
        for category, ev in self.evolvers.items():
            if not ev.population:
                await ev.start()  # one unit of work per step: scoring a baseline is one
                self._events.append(
                    ("iteration", {"category": category, "iteration": 0, "best": round(ev.best.score, 4),
                                   "strategy": "initial", "calls": ev.calls, "converged": False})
                )  # fmt: skip
                return
        if self._inbox:
            await self._consider(*self._inbox.pop(0))
            return
        pending = [c for c in self._order if not self.evolvers[c].converged]
        if not pending:
            if not self.done:
                await self._finish()
            await asyncio.sleep(0.1)
            return
        category = pending[self._next % len(pending)]
        self._next += 1
        ev = self.evolvers[category]
        await ev.step()
        best = ev.best
        self._events.append(
            ("iteration", {"category": category, "iteration": ev.iteration, "best": round(best.score, 4),
                           "strategy": best.strategy, "calls": ev.calls, "converged": ev.converged})
        )  # fmt: skip

    @property
    def waiting(self) -> int:
        """Received prompts waiting to be scored."""
        return len(self._inbox)

    def share(self) -> list[tuple[str, Body]]:
        if not self.federated:
            return []
        out: list[tuple[str, Body]] = []
        for category, ev in self.evolvers.items():
            if not ev.population:
                continue
            best = ev.best
            if best.strategy in ("initial", "received") or best.score < self._shared.get(category, 0.0) + (
                self.share_margin if category in self._shared else 0.0
            ):
                continue  # nothing of our own worth telling
            self._shared[category] = best.score
            out.append((category, self._prompt(category, best)))
        return out

    def merge(self, sender: str, domain: str, body: Body) -> None:
        if not isinstance(body, Prompt) or not self.federated or body.task not in self.evolvers:
            return
        if any(t == body.template for _, _, t in self._inbox) or len(self._inbox) >= MAX_INBOX:
            return
        key = (sender, body.task)
        if self._scored.get(key, 0) >= MAX_PER_SENDER or (
            key not in self._scored and len(self._scored) >= 4096
        ):
            return
        self._scored[key] = self._scored.get(key, 0) + 1
        self._inbox.append((sender, body.task, body.template))

    def apply_meta(self, meta: Meta) -> None:
        return None

    def affinity(self) -> Mapping[str, float]:
        return dict.fromkeys(self.evolvers, 1.0 / max(len(self.evolvers), 1))

    def summary(self) -> Mapping[str, float]:
        scores = [ev.best.score for ev in self.evolvers.values() if ev.population]
        return {
            "episodes": float(sum(ev.iteration for ev in self.evolvers.values())),
            "calls": float(sum(ev.calls for ev in self.evolvers.values())),
            "best_mean": round(sum(scores) / len(scores), 4) if scores else 0.0,
            "adopted": float(self.adopted),
            "refused": float(self.refused),
            "done": float(self.done),
        }

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        out, self._events = self._events, []
        return out

    def state(self) -> dict[str, Any]:
        return {
            c: {
                "population": [[x.template, x.score, x.strategy, x.generation] for x in ev.population],
                "iteration": ev.iteration,
                "calls": ev.calls,
                "converged": ev.converged,
            }
            for c, ev in self.evolvers.items()
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        for category, doc in state.items():
            ev = self.evolvers.get(category)
            if ev is None or not isinstance(doc, Mapping):
                continue
            try:
                ev.population = [
                    Candidate(str(t), float(s), str(k), int(g)) for t, s, k, g in doc["population"]
                ]
                ev.iteration, ev.calls = int(doc["iteration"]), int(doc["calls"])
                ev.converged = bool(doc["converged"])
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("evolve checkpoint for %s not restored (%s)", category, exc)

    # -- internals -------------------------------------------------------------

    async def _consider(self, sender: str, category: str, template: str) -> None:
        ev = self.evolvers[category]
        before = ev.best.score
        adopted = await ev.consider(template)
        self.adopted += adopted
        self.refused += not adopted
        fields = {"category": category, "from": sender, "before": round(before, 4)}
        self._events.append(
            ("adopted" if adopted else "refused", {**fields, "after": round(ev.best.score, 4)})
        )

    async def _finish(self) -> None:
        self.done = True
        result: dict[str, Any] = {"calls": sum(ev.calls for ev in self.evolvers.values())}
        if self.held_out:
            static, evolved = [], []
            for category, ev in self.evolvers.items():
                questions = [q for q in self.held_out if q.category == category]
                if questions:
                    static.append(await ev.accuracy(questions, STATIC_PROMPT))
                    evolved.append(await ev.accuracy(questions))
            result["static"] = round(sum(static) / len(static), 4) if static else None
            result["evolved"] = round(sum(evolved) / len(evolved), 4) if evolved else None
        result["best"] = {c: ev.best.template for c, ev in self.evolvers.items()}
        self._events.append(("done", result))

    def _prompt(self, category: str, best: Candidate) -> Prompt:
        return Prompt(
            category,
            best.template,
            best.score,
            len(self.evolvers[category].validation),
            best.strategy,
            best.generation,
        )

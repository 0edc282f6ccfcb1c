"""Decisions for an application's requests, and the feedback that rewards them.

An application's request is a *decision* of the prompt learner: a category (given by the caller
or guessed by :class:`Classifier`), a strategy (epsilon-greedy on the learner's merged view of its
own and its peers' Q-rows) and the strategy's template applied to the user's message.
:class:`Decider` makes decisions and keeps them in a :class:`DecisionStore` (bounded, with a
TTL; its ``state`` goes into the node's checkpoint) until feedback arrives; a rating in [0, 1]
becomes the learner's reward for that (category, strategy) through the learner's public surface
(its own rows, its config, its monitor and :func:`~metamesh.learners.prompts.scoring.reward`), so
the next share publishes it to the domain's peers as a Q-table — never the prompt or the answer.

Pure of HTTP: the gateway calls :meth:`Decider.decide` and :meth:`Decider.feedback`; everything
runs on the node's loop and never blocks.
"""

from __future__ import annotations

import random
import re
import secrets
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from metamesh.errors import MetameshError
from metamesh.learners.prompts.learner import PromptLearner
from metamesh.learners.prompts.qlearning import QRow, choose, update
from metamesh.learners.prompts.scoring import reward, score_answer
from metamesh.learners.prompts.strategies import render

__all__ = [
    "Classifier",
    "Decider",
    "Decision",
    "DecisionForbidden",
    "DecisionStore",
    "UnknownDecision",
]

#: Characters of an answer kept with its decision, for ``reference`` feedback.
ANSWER_KEPT = 4000
_WORD = re.compile(r"[a-z0-9]+")


class UnknownDecision(MetameshError):
    """No such decision: never made, already rated, or expired."""


class DecisionForbidden(MetameshError):
    """The decision was made for another API key."""


@dataclass(frozen=True, slots=True)
class Decision:
    """One request's choice; ``owner`` is the API key's id that may rate it."""

    id: str
    owner: str
    category: str
    strategy: str
    explored: bool
    created: float
    answer: str = ""
    backend: str = ""
    """The model that answered (the gateway's routing choice; empty when it had one choice)."""


class DecisionStore:
    """Decisions awaiting feedback: at most ``capacity`` (the oldest dropped first), each for ``ttl`` s."""

    def __init__(
        self, *, capacity: int = 100_000, ttl: float = 86_400.0, clock: Callable[[], float] = time.time
    ) -> None:
        self.capacity = capacity
        self.ttl = ttl
        self._clock = clock
        self._items: OrderedDict[str, Decision] = OrderedDict()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def put(self, decision: Decision) -> None:
        self._items[decision.id] = decision
        while len(self._items) > self.capacity:
            self._items.popitem(last=False)
            self.evicted += 1

    def with_answer(self, decision_id: str, answer: str) -> None:
        found = self._items.get(decision_id)
        if found is not None:
            d = found
            self._items[decision_id] = Decision(
                d.id, d.owner, d.category, d.strategy, d.explored, d.created, answer[:ANSWER_KEPT], d.backend
            )

    def get(self, decision_id: str) -> Decision | None:
        """The live decision, or None (unknown or expired; an expired one is dropped)."""
        found = self._items.get(decision_id)
        if found is not None and self._clock() - found.created > self.ttl:
            del self._items[decision_id]
            return None
        return found

    def pop(self, decision_id: str) -> None:
        self._items.pop(decision_id, None)

    def expire(self) -> int:
        """Drop every expired decision (oldest first); returns how many."""
        now, dropped = self._clock(), 0
        while self._items:
            first = next(iter(self._items.values()))
            if now - first.created <= self.ttl:
                break
            self._items.popitem(last=False)
            dropped += 1
        return dropped

    def state(self) -> list[list[Any]]:
        # by hand, not dataclasses.astuple (which deep-copies every field): a checkpoint of 2,000
        # decisions took 0.2 s of the loop that way, holding up every request meanwhile
        return [[d.id, d.owner, d.category, d.strategy, d.explored, d.created, d.answer, d.backend]
                for d in self._items.values()]  # fmt: skip

    def load_state(self, rows: Iterable[Any]) -> None:
        for row in rows:
            if isinstance(row, (list, tuple)) and len(row) in (7, 8):
                i, owner, cat, strat, explored, created, answer = row[:7]
                backend = str(row[7]) if len(row) == 8 else ""
                self.put(Decision(str(i), str(owner), str(cat), str(strat), bool(explored),
                                  float(created), str(answer), backend))  # fmt: skip
        self.expire()


class Classifier:
    """A category for a message nobody labelled: the category whose questions share most words with it.

    Trained on labelled questions (the learner's data); ``default`` when no word is shared.
    """

    def __init__(self, examples: Iterable[tuple[str, str]], *, default: str = "general") -> None:
        self.default = default
        self._words: dict[str, Counter[str]] = {}
        for text, category in examples:
            for word in set(_WORD.findall(text.lower())):
                if len(word) > 3:
                    self._words.setdefault(word, Counter())[category] += 1

    def classify(self, text: str) -> str:
        votes: dict[str, float] = {}
        for word in set(_WORD.findall(text.lower())):
            counts = self._words.get(word)
            if counts:
                total = sum(counts.values())
                for category, n in counts.items():
                    votes[category] = votes.get(category, 0.0) + n / total
        return max(votes, key=lambda c: votes[c]) if votes else self.default


class Decider:
    """Makes decisions with a :class:`PromptLearner` and rewards them with users' ratings."""

    def __init__(
        self,
        learner: PromptLearner,
        *,
        store: DecisionStore | None = None,
        classifier: Classifier | None = None,
        epsilon: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.learner = learner
        self.store = store or DecisionStore()
        self.classifier = classifier or Classifier(())
        self.epsilon = epsilon
        self.rng = random.Random(seed)
        self.decided = 0
        self.rated = 0
        self.seen: set[str] = set()

    def decide(
        self, text: str, *, owner: str, category: str | None = None, backend: str = ""
    ) -> tuple[Decision, str]:
        """A decision for ``text`` and the prompt to send (the strategy's template applied to it);
        ``backend`` is recorded with it (the model the caller routes it to)."""
        learner = self.learner
        cat = category or self.classifier.classify(text)
        row = learner.view(cat)
        greedy_only = choose(row, 0.0, random.Random(0))
        action = choose(row, self.epsilon, self.rng)
        decision = Decision(secrets.token_hex(12), owner, cat, learner.actions[action],
                            action != greedy_only, time.time(), backend=backend)  # fmt: skip
        self.store.put(decision)
        self.decided += 1
        self.seen.add(cat)
        return decision, render(learner.templates[action], text)

    def explain(self, decision: Decision) -> str:
        row = self.learner.view(decision.category)
        i = self.learner.actions.index(decision.strategy)
        how = "explored" if decision.explored else "the best-rated"
        return (
            f"{how} strategy for {decision.category!r}: value {row.values[i]:.2f} "
            f"over {int(row.visits[i])} ratings (own and peers')"
        )

    def feedback(
        self,
        decision_id: str,
        *,
        owner: str,
        score: float | None = None,
        reference: str | None = None,
    ) -> tuple[Decision, float]:
        """Reward the decision with ``score`` in [0, 1] (or the answer scored against ``reference``).

        Raises :class:`UnknownDecision` (unknown, rated or expired) or :class:`DecisionForbidden`
        (another key's); a decision takes one rating, then leaves the store.
        """
        decision = self.store.get(decision_id)
        if decision is None:
            raise UnknownDecision(f"no decision {decision_id!r} awaits feedback (unknown, rated or expired)")
        if decision.owner != owner:
            raise DecisionForbidden(f"decision {decision_id!r} was made for another API key")
        if score is None:
            score = score_answer(decision.answer, reference or "", ())
        score = min(max(float(score), 0.0), 1.0)
        self.apply(decision.category, decision.strategy, score)
        self.store.pop(decision_id)
        return decision, score

    def apply(self, category: str, strategy: str, score: float) -> None:
        """The learner's reward for one rating in [0, 1] (also what a journal replay applies)."""
        learner = self.learner
        if strategy not in learner.actions:
            return  # a strategy this node no longer has (its configuration changed)
        action = learner.actions.index(strategy)
        row = learner.own.setdefault(category, QRow.zeros(len(learner.actions)))
        update(row, action, reward(score), alpha=learner.config.alpha)
        learner.monitor.observe(f"{category}:{strategy}", score)
        self.seen.add(category)
        self.rated += 1

    def best(self) -> Mapping[str, str]:
        """The greedy strategy per category seen, on the merged view (what a user now gets)."""
        return {c: self.learner.actions[choose(self.learner.view(c), 0.0, random.Random(0))]
                for c in sorted(self.seen | set(self.learner.categories))}  # fmt: skip

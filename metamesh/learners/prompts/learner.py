"""The prompt-strategy learner (seed 000) as a node learner.

State = question category, action = prompt strategy, reward = 10 * correct - 1:
the accuracy it is judged by, on seed 000's scale (``scoring.reward``).
Categories are domains: the learner's affinity to a category is the smoothed
share of its recent questions in it, and it shares one Q-table per category
domain — its own experience only — when that row changed enough (send on
change) or a keepalive passed. It decides on the visit-weighted merge of its
own row and the latest row of each peer.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from metamesh.learners.monitor import CycleReport, DriftMonitor
from metamesh.learners.prompts.config import PromptLearnerConfig, replace_config
from metamesh.learners.prompts.dataset import Question
from metamesh.learners.prompts.qlearning import (
    QRow,
    choose,
    epsilon_for,
    greedy,
    mean_rows,
    merge_rows,
    update,
)
from metamesh.learners.prompts.scoring import is_correct, reward, score_answer
from metamesh.learners.prompts.strategies import render
from metamesh.llm.base import LLM, GenerateOptions
from metamesh.node.learner import Learner
from metamesh.protocol import GLOBAL_DOMAIN, Body, Insight, Meta, QTable

__all__ = ["PromptLearner", "PromptLearnerConfig"]

log = logging.getLogger(__name__)

MAX_SANE_VISITS = 1e9


class PromptLearner(Learner):
    """Learns which prompt strategy works best per category, with its peers."""

    name = "prompts"
    publishes = frozenset({"qtable", "insight"})  # rows, and its monitor's health reports
    accepts = frozenset({"qtable"})

    def __init__(
        self,
        llm: LLM,
        stream: Iterator[Question],
        *,
        config: PromptLearnerConfig,
        categories: Sequence[str],
        eval_questions: Sequence[Question] = (),
        eval_every: int = 0,
        max_episodes: int = 0,
    ) -> None:
        self.eval_questions = list(eval_questions)
        self.eval_every = eval_every
        self.max_episodes = max_episodes
        self.last_eval: float | None = None
        self.done = False
        self._events: list[tuple[str, dict[str, Any]]] = []
        self.llm = llm
        self.stream = stream
        self.config = config
        self.actions = list(config.strategies)
        self.templates = [config.strategies[a] for a in self.actions]
        self.categories = list(categories)
        self.own: dict[str, QRow] = {c: QRow.zeros(len(self.actions)) for c in self.categories}
        self.peers: dict[tuple[str, str], QRow] = {}
        self.episodes = 0
        self.correct_recent: deque[bool] = deque(maxlen=100)
        self.affinities: dict[str, float] = dict.fromkeys(self.categories, 0.0)
        self.rng = random.Random(config.seed)
        self.rejected = 0
        self._blame: list[tuple[str, str]] = []
        self.monitor = DriftMonitor(config.monitor)
        self.peer_weights: dict[str, float] = {}
        self._health: list[tuple[str, Body]] = []
        self._agreement = (0, 0)  # (choices that matched the peers' best, choices with peers) this cycle
        self._shared: dict[str, tuple[np.ndarray, float, float]] = {}
        self.priors: dict[str, QRow] = {}  # from a coordinator's meta-parameters
        self.meta_epsilon: dict[str, float] = {}
        self._meta_logged: list[str] = []
        self.options = GenerateOptions(temperature=0.2, max_tokens=96)

    # -- the learner interface -------------------------------------------------

    def view(self, category: str) -> QRow:
        """What the learner decides on: own experience, merged with peers' if federated."""
        own = self.own.setdefault(category, QRow.zeros(len(self.actions)))
        prior = [self.priors[category]] if category in self.priors else []
        if not self.config.federated:
            return merge_rows([own, *prior], len(self.actions)) if prior else own
        rows = [own, *prior, *(self._weighed(p, r) for (p, c), r in self.peers.items() if c == category)]
        merge = merge_rows if self.config.visit_weighted else mean_rows
        return merge(rows, len(self.actions))

    def _weighed(self, peer: str, row: QRow) -> QRow:
        """A peer's row with its visits scaled by the trust its health reports earn it."""
        weight = self.peer_weights.get(peer, 1.0)
        return row if weight >= 1.0 else QRow(row.values, row.visits * weight)

    def weigh_peer(self, peer: str, weight: float) -> None:
        """How much a peer's experience counts (1: fully; the node lowers it for a peer in drift)."""
        self.peer_weights[peer] = min(max(weight, 0.0), 1.0)

    def choose(self, category: str) -> int:
        if self.config.random_policy or (self.config.drift_at and self.episodes >= self.config.drift_at):
            return self.rng.randrange(len(self.actions))
        row = self.view(category)
        eps = epsilon_for(
            float(row.visits.sum()),
            start=min(self.config.epsilon_start, self.meta_epsilon.get(category, 1.0)),
            floor=self.config.epsilon_floor,
            decay=self.config.epsilon_decay,
        )
        return choose(row, eps, self.rng, min_tries=self.config.min_tries)

    async def ask(self, question: Question, action: int) -> float:
        """One LLM call with a strategy; returns the score."""
        completion = await self.llm.generate(
            render(self.templates[action], question.question), options=self.options
        )
        return score_answer(completion.text, question.answer, question.aliases)

    async def step(self) -> None:
        if self.done:
            await asyncio.sleep(0.1)  # finished: keep sharing and merging, stop asking
            return
        q = next(self.stream)
        action = self.choose(q.category)
        score = await self.ask(q, action)
        update(
            self.own.setdefault(q.category, QRow.zeros(len(self.actions))),
            action,
            reward(score),
            alpha=self.config.alpha,
        )
        self.episodes += 1
        self.correct_recent.append(is_correct(score))
        consensus = self.peers_choice(q.category) if self.config.federated else None
        if consensus is not None:
            self.note_agreement(consensus == action)
        report = self.monitor.observe(f"{q.category}:{self.actions[action]}", min(max(score, 0.0), 1.0))
        if report is not None:
            self._on_cycle(report)
            self._agreement = (0, 0)
        a = self.config.affinity_smoothing
        for c in self.affinities:
            self.affinities[c] = (1 - a) * self.affinities[c] + (a if c == q.category else 0.0)
        self.affinities.setdefault(q.category, a)
        if self.eval_every and self.eval_questions and self.episodes % self.eval_every == 0:
            await self._evaluate_and_report()
        if self.max_episodes and self.episodes >= self.max_episodes:
            if not self.eval_every or self.episodes % self.eval_every:
                await self._evaluate_and_report()
            self.done = True
            self._events.append(
                (
                    "done",
                    {"episodes": self.episodes, "accuracy": self.last_eval, "best": self.best_strategies()},
                )
            )

    def _on_cycle(self, report: CycleReport) -> None:
        """Log the cycle and tell the network how this node is doing (drift and alignment)."""
        fields: dict[str, Any] = {"cycle": report.cycle, "episodes": self.episodes}
        for name in ("drift", "alignment"):
            value = getattr(report, name)
            if value is not None:
                fields[name] = round(value, 4)
        coherence = self.coherence()
        if coherence is not None:
            fields["coherence"] = round(coherence, 4)
        fields.update(drifting=report.drifting, misaligned=report.misaligned, changes=list(report.changes))
        self._events.append(("monitor", fields))
        if not self.config.federated:
            return
        metrics = {"drifting": float(report.drifting), "misaligned": float(report.misaligned)}
        if report.drift is not None:
            metrics["drift"] = report.drift
        if report.alignment is not None:
            metrics["alignment"] = report.alignment
        if coherence is not None:
            metrics["coherence"] = coherence
        loss = 1.0 - report.alignment if report.alignment is not None else 0.0
        self._health = [(GLOBAL_DOMAIN, Insight.of({}, {}, avg_loss=loss, total_samples=self.episodes,
                                                    round=report.cycle, metrics=metrics))]  # fmt: skip

    def peers_choice(self, category: str) -> int | None:
        """The strategy most of this node's peers rate best for ``category`` (None without peers)."""
        votes: Counter[int] = Counter()
        rng = random.Random(0)
        for (_, c), row in self.peers.items():
            if c == category and row.visits.any():
                votes[greedy(row, rng)] += 1
        return votes.most_common(1)[0][0] if votes else None

    def note_agreement(self, agreed: bool) -> None:
        """One choice made with the peers' consensus at hand; ``agreed``: it was theirs."""
        hits, n = self._agreement
        self._agreement = (hits + agreed, n + 1)

    def coherence(self) -> float | None:
        """Agreement with domain peers over the last cycle: the share of this node's choices that
        were the strategy its peers rate best for the question's category (None without peers)."""
        hits, n = self._agreement
        return hits / n if n else None

    async def _evaluate_and_report(self) -> None:
        self.last_eval = await self.evaluate(self.eval_questions)
        self._events.append(
            (
                "eval",
                {
                    "episodes": self.episodes,
                    "accuracy": round(self.last_eval, 4),
                    "recent_accuracy": self.summary()["recent_accuracy"],
                    "peer_rows": len(self.peers),
                },
            )
        )

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        """Events for the node's log (evaluations, completion)."""
        out, self._events = self._events, []
        return out

    def share(self) -> list[tuple[str, Body]]:
        """Own rows that changed enough since last shared, or whose keepalive passed."""
        if not self.config.federated:
            return []
        now = time.monotonic()
        out: list[tuple[str, Body]] = self._health
        self._health = []
        for cat, row in self.own.items():
            total = float(row.visits.sum())
            if total == 0:
                continue
            last = self._shared.get(cat)
            if last is not None:
                values, visits, at = last
                changed = float(np.max(np.abs(row.values - values))) >= self.config.share_change
                grown = total - visits >= self.config.share_visits
                if not (changed or grown or now - at >= self.config.keepalive):
                    continue
            self._shared[cat] = (row.values.copy(), total, now)
            out.append(
                (
                    cat,
                    QTable(
                        (cat,),
                        tuple(self.actions),
                        row.values[None, :].copy(),
                        row.visits[None, :].copy(),
                        self.episodes,
                    ),
                )
            )
        return out

    def validate(self, sender: str, domain: str, body: Body) -> str | None:
        """A table with negative or huge visit counts or values is refused: not kept, not relayed."""
        if isinstance(body, QTable) and self.config.federated and _insane(body):
            self.rejected += 1
            return "insane_values"
        return None

    def merge(self, sender: str, domain: str, body: Body) -> None:
        if not isinstance(body, QTable) or not self.config.federated:
            return
        if _insane(body):  # called directly, not by a node that validated it first
            self.rejected += 1
            self._blame.append((sender, "insane_values"))  # the node counts it against the sender
            return
        visits = np.asarray(body.visits, dtype=np.float64)
        index = {a: i for i, a in enumerate(self.actions)}
        for s, state in enumerate(body.states):
            if state not in self.own:
                continue
            row = QRow.zeros(len(self.actions))
            for j, action in enumerate(body.actions):
                i = index.get(action)
                if i is not None:
                    row.values[i] = body.values[s, j]
                    row.visits[i] = visits[s, j]
            self.peers[(sender, state)] = row

    def drain_blame(self) -> list[tuple[str, str]]:
        """Peers whose tables were refused as insane since the last call, and why."""
        out, self._blame = self._blame, []
        return out

    def apply_meta(self, meta: Meta) -> None:
        """A coordinator's prior row (tensor ``prior.CATEGORY``: values and visits over the
        labels ``actions``) and exploration rate (``eps.CATEGORY``) per category."""
        eps = meta.params.get("epsilon_start")
        if eps is not None and 0 <= eps <= 1:
            self.config = replace_config(self.config, epsilon_start=float(eps))
        applied: list[str] = []
        actions = meta.labels.get("actions", ())
        index = [(j, self.actions.index(a)) for j, a in enumerate(actions) if a in self.actions]
        for name, array in meta.tensors.items():
            category = name[len("prior.") :]
            if not name.startswith("prior.") or category not in self.own:
                continue
            if array.shape != (2, len(actions)) or (array[1] < 0).any() or (np.abs(array[0]) > 100).any():
                self.rejected += 1
                continue
            row = QRow.zeros(len(self.actions))
            for j, i in index:
                row.values[i] = array[0, j]
                # A prior is worth at most min_tries visits per action: enough to skip blind
                # exploration, little enough that the node's own and peers' experience soon rules.
                row.visits[i] = min(float(array[1, j]), float(self.config.min_tries))
            self.priors[category] = row
            applied.append(category)
        for name, value in meta.params.items():
            category = name[len("eps.") :]
            if name.startswith("eps.") and category in self.own and 0 <= value <= 1:
                self.meta_epsilon[category] = float(value)
        if sorted(applied) != self._meta_logged:  # logged when the categories covered change, not per version
            self._meta_logged = sorted(applied)
            self._events.append(
                ("meta_applied", {"version": meta.version, "priors": sorted(applied),
                                  "epsilon": {c: round(e, 4) for c, e in sorted(self.meta_epsilon.items())}})
            )  # fmt: skip

    def affinity(self) -> Mapping[str, float]:
        return dict(self.affinities)

    def summary(self) -> Mapping[str, float]:
        acc = sum(self.correct_recent) / len(self.correct_recent) if self.correct_recent else 0.0
        out = {
            "episodes": self.episodes,
            "recent_accuracy": round(acc, 4),
            "peer_rows": len(self.peers),
            "rejected": self.rejected,
            "done": float(self.done),
        }
        if self.last_eval is not None:
            out["accuracy"] = round(self.last_eval, 4)
        return out

    def best_strategies(self) -> dict[str, str]:
        return {c: self.actions[greedy(self.view(c), random.Random(0))] for c in self.categories}

    async def evaluate(self, questions: Sequence[Question]) -> float:
        """Greedy accuracy on held-out questions (no learning from them)."""
        if not questions:
            return 0.0
        right = 0
        for q in questions:
            action = (
                self.rng.randrange(len(self.actions))
                if self.config.random_policy
                else greedy(self.view(q.category), self.rng)
            )
            right += is_correct(await self.ask(q, action))
        return right / len(questions)

    def state(self) -> dict[str, Any]:
        return {
            "actions": self.actions,
            "episodes": self.episodes,
            "own": {c: [r.values, r.visits] for c, r in self.own.items()},
            "peers": [[s, c, r.values, r.visits] for (s, c), r in self.peers.items()],
            "affinities": self.affinities,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        if list(state.get("actions", [])) != self.actions:
            log.warning("checkpoint strategies differ from the configured ones; starting fresh")
            return
        self.episodes = int(state.get("episodes", 0))
        for c, (values, visits) in state.get("own", {}).items():
            self.own[c] = QRow(np.array(values, dtype=np.float64), np.array(visits, dtype=np.float64))
        for s, c, values, visits in state.get("peers", []):
            self.peers[(s, c)] = QRow(np.array(values, dtype=np.float64), np.array(visits, dtype=np.float64))
        self.affinities.update({k: float(v) for k, v in state.get("affinities", {}).items()})


def _insane(body: QTable) -> bool:
    visits = np.asarray(body.visits, dtype=np.float64)
    return bool((visits < 0).any() or (visits > MAX_SANE_VISITS).any() or (np.abs(body.values) > 100).any())

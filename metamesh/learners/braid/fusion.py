"""Output-level fusion of black-box models: single, weighted vote, router, cascade.

The pool's models are HTTP endpoints, so models are combined by what they
answer, never inside their layers (``docs/braid.md`` says why, and what
would bring layer-level fusion in):

- ``single``: one call.
- ``vote``: k models in parallel; each part's answer is the weighted
  majority, weights being the policy's preference among the chosen models.
- ``router``: each part goes to its own model; models run in parallel.
- ``cascade``: the cheapest chosen model first; escalate to the next while
  the answer's confidence is below the threshold. Sequential.

Cost is the sum over models called; latency is the slowest call for parallel
strategies and the sum for a cascade.
"""

from __future__ import annotations

import math
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .pool import ModelDescriptor
from .tasks import Task

__all__ = [
    "SIZES",
    "STRATEGIES",
    "THRESHOLDS",
    "Backend",
    "Decision",
    "Outcome",
    "Reply",
    "SimulatedBackend",
    "execute",
]

STRATEGIES = ("single", "vote", "router", "cascade")
SIZES = (2, 3)
"""Models in a vote or a cascade."""
THRESHOLDS = (0.6, 0.75, 0.9)
"""Cascade: escalate while the answer's confidence is below this."""


@dataclass(frozen=True, slots=True)
class Decision:
    """How to answer one task: ``models`` are pool indices (a cascade's cheapest first)."""

    strategy: str
    models: tuple[int, ...]
    assignment: tuple[int, ...] = ()
    """Router: the model for each part."""
    weights: tuple[float, ...] = ()
    """Vote: each model's weight."""
    threshold: float = 0.0
    """Cascade: escalate below this confidence."""

    def describe(self, pool: Sequence[ModelDescriptor]) -> str:
        names = [pool[m].name for m in self.models]
        match self.strategy:
            case "single":
                return f"single {names[0]}"
            case "vote":
                return "vote " + " + ".join(
                    f"{n} ({w:.2f})" for n, w in zip(names, self.weights, strict=True)
                )
            case "router":
                return "router " + ", ".join(pool[m].name for m in self.assignment)
            case _:
                return f"cascade {' -> '.join(names)} (escalate below confidence {self.threshold:g})"


@dataclass(frozen=True, slots=True)
class Reply:
    answers: tuple[int, ...]
    """One per part; 0 is the right answer, others are wrong ones."""
    confidence: float
    latency_ms: float


@dataclass(frozen=True, slots=True)
class Outcome:
    quality: float
    """Share of the task's parts answered right."""
    cost: float
    latency_ms: float
    called: tuple[int, ...]
    latencies: tuple[float, ...] = ()
    """Each called model's own latency, in ``called`` order."""


class Backend(Protocol):
    def reply(self, model: int, task: Task) -> Reply: ...


class SimulatedBackend:
    """Answers of the simulated pool: deterministic per (task, model), with lognormal latency jitter.

    A right answer comes with a confidence drawn from [0.55, 1), a wrong one
    from [0.1, 0.8): informative, not perfect, as real self-reported
    confidences are. Wrong answers are one of three wrong options, so
    wrong models sometimes agree.
    """

    def __init__(self, pool: Sequence[ModelDescriptor], *, jitter: float = 0.15) -> None:
        self.pool = tuple(pool)
        self.jitter = jitter
        self._salt = [zlib.crc32(m.name.encode()) for m in self.pool]

    def reply(self, model: int, task: Task) -> Reply:
        desc = self.pool[model]
        rng = np.random.default_rng([task.id, self._salt[model]])
        answers, confidences = [], []
        for part in task.parts:
            right = bool(rng.random() < desc.p_right(part, task.complexity))
            answers.append(0 if right else int(rng.integers(1, 4)))
            confidences.append(float(rng.uniform(0.55, 1.0) if right else rng.uniform(0.1, 0.8)))
        latency = desc.latency_ms * math.exp(self.jitter * float(rng.standard_normal()))
        return Reply(tuple(answers), min(confidences), latency)


def _quality(answers: Sequence[int]) -> float:
    return sum(a == 0 for a in answers) / len(answers)


def execute(decision: Decision, task: Task, pool: Sequence[ModelDescriptor], backend: Backend) -> Outcome:
    """Run a decision; the answers are scored against the task's right answers."""
    if decision.strategy == "cascade":
        called: list[int] = []
        times: list[float] = []
        latency = 0.0
        final: Reply | None = None
        for m in decision.models:
            final = backend.reply(m, task)
            called.append(m)
            times.append(final.latency_ms)
            latency += final.latency_ms
            if final.confidence >= decision.threshold:
                break
        assert final is not None
        return Outcome(
            _quality(final.answers), sum(pool[m].cost for m in called), latency, tuple(called), tuple(times)
        )
    distinct = sorted(set(decision.assignment if decision.strategy == "router" else decision.models))
    replies = {m: backend.reply(m, task) for m in distinct}
    cost = sum(pool[m].cost for m in distinct)
    latency = max(r.latency_ms for r in replies.values())
    if decision.strategy == "router":
        answers = [replies[m].answers[i] for i, m in enumerate(decision.assignment)]
    elif decision.strategy == "vote":
        answers = []
        for i in range(len(task.parts)):
            tally: dict[int, float] = {}
            for m, w in zip(decision.models, decision.weights, strict=True):
                tally[replies[m].answers[i]] = tally.get(replies[m].answers[i], 0.0) + w
            answers.append(max(tally, key=lambda a: tally[a]))
    else:
        answers = list(replies[decision.models[0]].answers)
    each = tuple(replies[m].latency_ms for m in distinct)
    return Outcome(_quality(answers), cost, latency, tuple(distinct), each)

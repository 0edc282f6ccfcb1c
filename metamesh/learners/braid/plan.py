"""Hard limits as masks: which choices keep a decision within its budget and latency limit.

A decision is made step by step (strategy, then its size or threshold, then
models one at a time), and at every step only the choices from which a
complete decision within both limits can still be reached are open. So no
policy, however untrained, can pick a decision that breaks a limit on paper;
what remains is latency jitter, which :class:`LatencyEstimates` plans for
with each model's measured 99.5th percentile.

The same procedure serves the learned policy (logits), the random baseline
(flat logits) and greedy deployment (argmax): :func:`decide` takes the scores
and a ``pick`` function and records every step with its mask, so the
policy's log-probability of the decision can be recomputed for learning.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .fusion import SIZES, STRATEGIES, THRESHOLDS, Decision
from .pool import ModelDescriptor
from .tasks import Task

__all__ = ["Choice", "LatencyEstimates", "Planner", "Scores", "Trace", "decide", "greedy", "sampler"]

Pick = Callable[[np.ndarray, np.ndarray], int]
"""(logits, open mask) -> index of an open choice."""


class LatencyEstimates:
    """Per model, the latency to plan with: lognormal 99.5th percentile of the last ``window`` calls.

    Until ``min_calls`` calls are seen it is 1.5x the descriptor's typical
    latency, a conservative prior.
    """

    Z = 2.576  # standard normal 99.5th percentile

    def __init__(self, pool: Sequence[ModelDescriptor], *, window: int = 400, min_calls: int = 20) -> None:
        self.typical = [m.latency_ms for m in pool]
        self.min_calls = min_calls
        self._logs: list[deque[float]] = [deque(maxlen=window) for _ in pool]
        self._sums = [[0.0, 0.0] for _ in pool]  # running sum and sum of squares of the window
        self._planned: np.ndarray | None = None
        self.observed = 0
        """Latencies observed so far: what changes the plans."""

    def observe(self, model: int, latency_ms: float) -> None:
        if not (latency_ms > 0 and math.isfinite(latency_ms)):
            return
        logs, sums = self._logs[model], self._sums[model]
        if len(logs) == logs.maxlen:
            old = logs[0]
            sums[0] -= old
            sums[1] -= old * old
        x = math.log(latency_ms)
        logs.append(x)
        sums[0] += x
        sums[1] += x * x
        self._planned = None
        self.observed += 1

    def planned(self) -> np.ndarray:
        if self._planned is None:
            out = np.empty(len(self.typical))
            for i, logs in enumerate(self._logs):
                n = len(logs)
                if n < self.min_calls:
                    out[i] = 1.5 * self.typical[i]
                    continue
                mean = self._sums[i][0] / n
                var = max(self._sums[i][1] - n * mean * mean, 0.0) / (n - 1)
                out[i] = math.exp(mean + self.Z * math.sqrt(var))
            self._planned = out
        return self._planned

    def state(self) -> dict[str, Any]:
        return {"logs": [list(d) for d in self._logs]}

    def load_state(self, state: dict[str, Any]) -> None:
        logs = state["logs"]
        if len(logs) != len(self._logs):
            raise ValueError("latency estimates are for another pool")
        for i, values in enumerate(logs):
            self._logs[i].clear()
            self._sums[i] = [0.0, 0.0]
            for v in values:
                self.observe(i, math.exp(float(v)))


@dataclass(slots=True)
class Choice:
    index: int
    mask: np.ndarray
    context: int = 0
    """Model choices: 0 scores with the task, i + 1 with its part i (router)."""


@dataclass(slots=True)
class Trace:
    """Every step of one decision, with what was open at each: enough to recompute its log-probability."""

    strategy: Choice
    size: Choice | None = None
    threshold: Choice | None = None
    models: list[Choice] = field(default_factory=list)


@dataclass(slots=True)
class Scores:
    """Logits for one task: strategies, sizes, thresholds, and models per context."""

    strategy: np.ndarray
    size: np.ndarray
    threshold: np.ndarray
    models: list[np.ndarray]
    """``models[0]`` for the task; ``models[i + 1]`` for part i (a router's contexts)."""


class Planner:
    """What fits one task's limits, given the pool's costs and the latencies to plan with."""

    def __init__(self, pool: Sequence[ModelDescriptor], task: Task, planned_ms: np.ndarray) -> None:
        self.cost = np.array([m.cost for m in pool])
        self.lat = np.asarray(planned_ms, dtype=float)
        self.budget = task.budget * (1 + 1e-9)
        self.limit = task.latency_limit_ms
        self.n = len(pool)
        self.parts = len(task.parts)
        self.fits = (self.cost <= self.budget) & (self.lat <= self.limit)

    def _ok(self, models: Sequence[int], sequential: bool) -> bool:
        lat = [self.lat[m] for m in models]
        return bool(
            sum(self.cost[m] for m in models) <= self.budget
            and (sum(lat) if sequential else max(lat)) <= self.limit
        )

    def completable(self, chosen: Sequence[int], k: int, sequential: bool) -> bool:
        """Whether ``chosen`` extends to ``k`` distinct models within both limits."""
        rest = [m for m in range(self.n) if m not in chosen and self.fits[m]]
        need = k - len(chosen)
        if need < 0 or len(rest) < need:
            return False
        return any(self._ok([*chosen, *extra], sequential) for extra in itertools.combinations(rest, need))

    def strategy_mask(self) -> np.ndarray:
        single = bool(self.fits.any())
        return np.array(
            [single, self.size_mask("vote").any(), single and self.parts > 1, self.size_mask("cascade").any()]
        )

    def size_mask(self, strategy: str) -> np.ndarray:
        return np.array([self.completable([], k, strategy == "cascade") for k in SIZES])

    def model_mask(self, strategy: str, chosen: Sequence[int], k: int) -> np.ndarray:
        mask = np.zeros(self.n, dtype=bool)
        if strategy == "router":
            spent = sum(self.cost[m] for m in set(chosen))
            for m in range(self.n):
                extra = 0.0 if m in chosen else self.cost[m]
                mask[m] = bool(self.fits[m] and spent + extra <= self.budget)
            return mask
        for m in range(self.n):
            if m not in chosen and self.fits[m]:
                mask[m] = self.completable([*chosen, m], k, strategy == "cascade")
        return mask


def sampler(rng: np.random.Generator) -> Pick:
    def pick(logits: np.ndarray, mask: np.ndarray) -> int:
        z = np.where(mask, logits, -np.inf)
        p = np.exp(z - z.max())
        return int(rng.choice(len(p), p=p / p.sum()))

    return pick


def greedy(logits: np.ndarray, mask: np.ndarray) -> int:
    return int(np.argmax(np.where(mask, logits, -np.inf)))


def masked_softmax(logits: np.ndarray, mask: np.ndarray) -> np.ndarray:
    z = np.where(mask, logits, -np.inf)
    p = np.exp(z - z.max())
    return np.asarray(p / p.sum())


def decide(planner: Planner, task: Task, scores: Scores, pick: Pick) -> tuple[Decision, Trace]:
    """One decision within the task's limits. Raises ValueError when nothing in the pool fits."""
    smask = planner.strategy_mask()
    if not smask.any():
        raise ValueError(f"no model of the pool fits {task.describe()}")
    trace = Trace(Choice(pick(scores.strategy, smask), smask))
    strategy = STRATEGIES[trace.strategy.index]
    if strategy == "router":
        assignment: list[int] = []
        for i in range(len(task.parts)):
            mask = planner.model_mask("router", assignment, 0)
            choice = Choice(pick(scores.models[i + 1], mask), mask, i + 1)
            trace.models.append(choice)
            assignment.append(choice.index)
        return Decision("router", tuple(sorted(set(assignment))), assignment=tuple(assignment)), trace
    k = 1
    if strategy in ("vote", "cascade"):
        kmask = planner.size_mask(strategy)
        trace.size = Choice(pick(scores.size, kmask), kmask)
        k = SIZES[trace.size.index]
    chosen: list[int] = []
    for _ in range(k):
        mask = planner.model_mask(strategy, chosen, k)
        choice = Choice(pick(scores.models[0], mask), mask)
        trace.models.append(choice)
        chosen.append(choice.index)
    if strategy == "single":
        return Decision("single", (chosen[0],)), trace
    if strategy == "vote":
        logits = scores.models[0][chosen]
        w = np.exp(logits - logits.max())
        return Decision("vote", tuple(chosen), weights=tuple(float(x) for x in w / w.sum())), trace
    open_all = np.ones(len(THRESHOLDS), dtype=bool)
    trace.threshold = Choice(pick(scores.threshold, open_all), open_all)
    order = tuple(sorted(chosen, key=lambda m: (planner.cost[m], planner.lat[m])))
    return Decision("cascade", order, threshold=THRESHOLDS[trace.threshold.index]), trace

"""Which backend answers the virtual model: a bandit per category over the backends within a cost budget.

Seed 004's question (which model to use, under a compute budget) asked of the gateway's own
backends and its users' ratings. This is deliberately the simple form, not the braid learner's
policy network (``metamesh.learners.braid.policy``, a torch attention net trained by REINFORCE on
simulated tasks): the ratings are kept in the braid learner's own :class:`RatingTable` (per
category, per backend, shrunk towards 0.5), and the choice over them is a bandit. Each backend has
a cost per request (``--backend-cost NAME=COST``, default 1); a request may carry a budget
(``metadata.budget``, else the gateway's ``--budget``); among the backends that fit the budget (the
cheapest alone if none does) the router tries each unrated one once per category, then picks the
best rating (ties: the cheaper), exploring another with probability ``epsilon``. The ratings are
this node's own: checkpointed (and rebuilt from the feedback journal), not gossiped, since peers'
backends differ.
A client bypasses the router by asking for a backend's model name (``GET /v1/models``).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from metamesh.learners.braid.ratings import RatingTable

__all__ = ["RouteChoice", "Router"]


@dataclass(frozen=True, slots=True)
class RouteChoice:
    backend: str
    explored: bool
    budget: float | None
    cost: float


class Router:
    """Routing statistics per (category, backend) and the choice they make (see the module docstring)."""

    def __init__(
        self,
        backends: Sequence[str],
        costs: Mapping[str, float] | None = None,
        *,
        budget: float | None = None,
        epsilon: float = 0.05,
        seed: int = 0,
    ) -> None:
        self.backends = list(backends)
        self.costs = {b: float((costs or {}).get(b, 1.0)) for b in self.backends}
        self.budget = budget
        self.epsilon = epsilon
        self.rng = random.Random(seed)
        self.index = {b: i for i, b in enumerate(self.backends)}
        self.table = RatingTable(len(self.backends))
        """Ratings per (category, backend): the braid learner's memory of its users' ratings."""

    def rated(self, category: str, backend: str) -> tuple[int, float]:
        """Ratings of ``backend`` for ``category`` (up to the table's cap), and their shrunk mean."""
        mean, share = self.table.features(category)[self.index[backend]]
        return round(math.expm1(float(share) * math.log1p(self.table.cap))), float(mean)

    def eligible(self, budget: float | None) -> list[str]:
        """The backends a request with ``budget`` may use (the cheapest if none fits)."""
        if budget is None:
            return list(self.backends)
        fit = [b for b in self.backends if self.costs[b] <= budget + 1e-12]
        return fit or [min(self.backends, key=lambda b: self.costs[b])]

    def _mean(self, category: str, backend: str) -> float:
        return self.rated(category, backend)[1]

    def best(self, category: str, budget: float | None = None) -> str:
        """The backend a greedy choice picks now for ``category`` within ``budget``."""
        names = self.eligible(self.budget if budget is None else budget)
        return max(names, key=lambda b: (self._mean(category, b), -self.costs[b]))

    def choose(self, category: str, budget: float | None = None) -> RouteChoice:
        limit = self.budget if budget is None else budget
        names = self.eligible(limit)
        if len(names) == 1:
            return RouteChoice(names[0], False, limit, self.costs[names[0]])
        untried = [b for b in names if self.rated(category, b)[0] == 0]
        if untried:
            return RouteChoice(untried[0], True, limit, self.costs[untried[0]])
        greedy = self.best(category, limit)
        pick = self.rng.choice(names) if self.rng.random() < self.epsilon else greedy
        return RouteChoice(pick, pick != greedy, limit, self.costs[pick])

    def observe(self, category: str, backend: str, score: float) -> None:
        if backend in self.index:
            self.table.record(category, [self.index[backend]], score)

    def explain(self, category: str, route: RouteChoice) -> str:
        n, mean = self.rated(category, route.backend)
        how = "explored" if route.explored else "the best-rated"
        within = f" within budget {route.budget:g}" if route.budget is not None else ""
        return f"{how} backend for {category!r}{within}: mean rating {mean:.2f} over {n}, cost {route.cost:g}"

    def state(self) -> dict[str, Any]:
        return {"backends": self.backends, "table": self.table.state()}

    def load_state(self, state: Any) -> None:
        """Restore the ratings if they are of these backends (in this order); otherwise start afresh."""
        if isinstance(state, dict) and state.get("backends") == self.backends:
            try:
                self.table.load_state(state["table"])
            except (KeyError, TypeError, ValueError):
                self.table = RatingTable(len(self.backends))

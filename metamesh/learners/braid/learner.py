"""BraidLearner: REINFORCE with a value baseline over braid decisions, shared as weight deltas (torch).

One learning step is one task: decide (sampling, within the hard limits),
run the decision on the pool, get a rating, and every ``batch`` rated tasks
take a policy-gradient step on ``-(r - V) log pi(decision)`` plus the value
loss and an entropy bonus. The reward is the rated performance (a user's
1-5 stars as ``(stars - 1) / 4``, or the measured quality) minus cost and
latency penalties, each a share of the task's limit (:class:`Reward`).

The learner has the interface the experts node learner federates
(``train_round``, ``delta``, ``apply_average``, ``base_weights`` …), so
policies travel the experts' gossip path: offsets from shared initial
weights, with the same aggregation rules, outlier screens and DP options.
A round is ``tasks_per_round`` tasks.
"""

from __future__ import annotations

import logging
import math
import time
from collections import Counter, OrderedDict, deque
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch

from metamesh.learners.experts.history import VersionHistory
from metamesh.learners.experts.model import check_tensors
from metamesh.learners.experts.privacy import PrivacyConfig, RDPAccountant
from metamesh.learners.experts.report import ExpertInsight, RoundReport
from metamesh.learners.experts.shared import SharedWeights
from metamesh.learners.optim import Adam

from .config import BraidConfig
from .evaluate import Summary, summarise
from .explain import Explanation, explain
from .fusion import Backend, Decision, Outcome, execute
from .gradient import Pending, policy_loss
from .plan import LatencyEstimates, Planner, decide, greedy, sampler
from .policy import BraidPolicy, contexts, encode
from .pool import ModelDescriptor
from .ratings import RatingTable
from .tasks import DEFAULT_MIX, Task, TaskStream, eval_tasks

__all__ = ["BraidConfig", "BraidLearner", "simulated_stars"]

log = logging.getLogger(__name__)

STATE_FORMAT = 1


def simulated_stars(quality: float, rng: np.random.Generator) -> int:
    """A user's rating of an answer of this quality: 1 + 4q plus noise, rounded to 1-5 stars."""
    return int(min(5, max(1, round(1 + 4 * quality + rng.normal(0.0, 0.5)))))


class BraidLearner(SharedWeights):
    """A braid policy learning on one node; see the module docstring."""

    def __init__(
        self,
        pool: Sequence[ModelDescriptor],
        backend: Backend,
        stream: TaskStream | None,
        config: BraidConfig | None = None,
        *,
        domain: str = "braid",
        eval_mix: Mapping[str, float] = DEFAULT_MIX,
    ) -> None:
        self.config = cfg = config or BraidConfig()
        if torch.get_num_threads() != cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.pool = tuple(pool)
        self.backend = backend
        self.stream = stream
        self.domain = domain
        torch.manual_seed(cfg.init_seed)
        self.policy = BraidPolicy(cfg.hidden)
        self._params = dict(self.policy.named_parameters())
        self._trainable = tuple(self._params)
        self._base = {n: p.detach().clone() for n, p in self._params.items()}
        self._optimizer = Adam(self.policy.parameters(), lr=cfg.lr)
        self._rng = np.random.default_rng([cfg.seed, 0])
        self._pick = sampler(self._rng)
        self.latency = LatencyEstimates(self.pool)
        self.ratings = RatingTable(len(self.pool))
        self._accountant = RDPAccountant()
        self._history = VersionHistory(maxlen=256)
        self._version = 0
        self._rounds = 0
        self._tasks = 0
        self._next_id = 1
        self.limits: Counter[str] = Counter()
        """Decisions run, and how many went over their budget or latency limit (``over_*``)."""
        self._changes = (
            0  # policy updates and restores (merges move the version): when the held-out figure is stale
        )
        self._heldout: tuple[tuple[int, int, int], float] | None = None
        self._pending: OrderedDict[int, Pending] = OrderedDict()
        self._rated: list[tuple[Pending, float]] = []
        self._recent: deque[tuple[str, float, float, float]] = deque(maxlen=512)  # type, reward, q, cost
        self._eval = [
            t for b in cfg.budgets
            for t in eval_tasks(cfg.eval_per_budget, eval_mix, budget=b,
                                latency_limit_ms=cfg.latency_limit_ms, seed=cfg.eval_seed)
        ]  # fmt: skip

    # ------------------------------------------------------------------ deciding and feedback

    @property
    def tasks(self) -> int:
        """Tasks decided and learned from so far."""
        return self._tasks

    def decide(self, task: Task, *, explore: bool = True) -> tuple[int, Decision]:
        """A decision within the task's limits, and the id to :meth:`rate` it by.

        ``explore`` samples from the policy (learning); otherwise it takes the
        most likely choice at every step (deployment). Raises ValueError when
        no model of the pool fits the task's limits.
        """
        planned = self.latency.planned()
        task_x, model_x = encode(contexts(task), self.pool, planned, self.ratings)
        scores = self.policy.scores_of([task], task_x, model_x)[0]
        decision, trace = decide(
            Planner(self.pool, task, planned), task, scores, self._pick if explore else greedy
        )
        ident = self._next_id
        self._next_id += 1
        self._pending[ident] = Pending(task, decision, trace, task_x, model_x)
        while len(self._pending) > 4096:  # ratings that never came
            self._pending.popitem(last=False)
        return ident, decision

    def run(self, ident: int) -> Outcome:
        """Run a decided task on the pool; latencies measured feed the planning estimates."""
        p = self._pending[ident]
        outcome = execute(p.decision, p.task, self.pool, self.backend)
        p.outcome = outcome
        self.limits["decisions"] += 1
        self.limits["over_budget"] += outcome.cost > p.task.budget * (1 + 1e-9)
        self.limits["over_latency"] += outcome.latency_ms > p.task.latency_limit_ms
        for m, ms in zip(outcome.called, outcome.latencies, strict=True):
            self.latency.observe(m, ms)
        return outcome

    def rate(self, ident: int, stars: float) -> float:
        """A user's 1-5 star rating of decision ``ident``; returns the reward learned from.

        Raises KeyError for an unknown (or long-forgotten) id and ValueError
        for a rating outside 1-5.
        """
        if not 1 <= stars <= 5:
            raise ValueError(f"a rating is 1 to 5 stars, got {stars}")
        return self.feedback(ident, (stars - 1) / 4)

    def feedback(self, ident: int, performance: float) -> float:
        """Learn from decision ``ident``'s performance in [0, 1] (the seed's ``learn_from_feedback``)."""
        p = self._pending.pop(ident)
        outcome = p.outcome or Outcome(performance, 0.0, 0.0, ())
        self._remember(p, performance, outcome)
        reward = self.config.reward(p.task, performance, outcome)
        self._rated.append((p, reward))
        self._recent.append((p.task.type, reward, outcome.quality, outcome.cost))
        self._tasks += 1
        if len(self._rated) >= self.config.batch:
            self._update(self._rated)
            self._rated = []
        return reward

    def step(self, task: Task) -> Outcome:
        """Decide, run, get rated (simulated stars, or the quality), learn."""
        ident, _ = self.decide(task)
        outcome = self.run(ident)
        if self.config.rated:
            self.rate(ident, simulated_stars(outcome.quality, self._rng))
        else:
            self.feedback(ident, outcome.quality)
        return outcome

    def adapt(self, rated: Sequence[tuple[int, float]], *, epochs: int = 0, lr: float = 0.003) -> None:
        """Few-shot: take in a handful of rated decisions, say on a task type new to this node.

        ``rated`` holds (decision id, stars) of decisions made with
        :meth:`decide` and run with :meth:`run`. The ratings go into the
        rating memory the policy reads (:mod:`.ratings`), which is how a
        trained policy adapts at once; ``epochs`` > 0 also takes that many
        policy-gradient steps at ``lr`` on the handful (measured: with 8
        ratings they help as often as they hurt, hence 0 by default).
        Raises KeyError for an unknown id, ValueError for a rating outside 1-5.
        """
        batch: list[tuple[Pending, float]] = []
        for ident, stars in rated:
            if not 1 <= stars <= 5:
                raise ValueError(f"a rating is 1 to 5 stars, got {stars}")
            p = self._pending.pop(ident)
            outcome = p.outcome or Outcome((stars - 1) / 4, 0.0, 0.0, ())
            self._remember(p, (stars - 1) / 4, outcome)
            batch.append((p, self.config.reward(p.task, (stars - 1) / 4, outcome)))
            self._recent.append((p.task.type, batch[-1][1], outcome.quality, outcome.cost))
            self._tasks += 1
        if batch and epochs > 0:
            optimizer = Adam(self.policy.parameters(), lr=lr)
            for _ in range(
                epochs
            ):  # raw advantages against the learned baseline: a handful cannot be normalised
                loss = self._loss(batch, normalise=False)
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
        self._changes += 1

    def _remember(self, p: Pending, performance: float, outcome: Outcome) -> None:
        """Credit the rating to the models that made the answer (see :mod:`.ratings`)."""
        d = p.decision
        if d.strategy == "cascade":
            answered = outcome.called[-1:] if outcome.called else d.models[:1]
            self.ratings.record(p.task.type, answered, performance)
        elif d.strategy == "router":
            self.ratings.record(p.task.type, d.assignment, performance)
            for part, m in zip(p.task.parts, d.assignment, strict=True):
                self.ratings.record(part, [m], performance)
        else:
            self.ratings.record(p.task.type, d.models, performance)

    def explain(self, task: Task) -> Explanation:
        """The deployment decision for ``task``, the probabilities of its alternatives, and its drivers."""
        return explain(self.policy, task, self.pool, self.latency.planned(), self.ratings)

    # ------------------------------------------------------------------ policy gradient

    def _update(self, batch: Sequence[tuple[Pending, float]]) -> float:
        loss = self._loss(batch)
        self._optimizer.zero_grad()
        loss.backward()
        self._optimizer.step()
        self._changes += 1
        return float(loss.detach())

    def _loss(self, batch: Sequence[tuple[Pending, float]], *, normalise: bool = True) -> torch.Tensor:
        return policy_loss(
            self.policy, batch, entropy=self.config.entropy, normalise=normalise and self.config.normalise
        )

    # ------------------------------------------------------------------ rounds and evaluation

    def train_round(self) -> RoundReport:
        """``tasks_per_round`` tasks from the stream, learning as ratings come."""
        if self.stream is None:
            raise RuntimeError("this learner has no task stream; use decide/run/rate")
        start = time.perf_counter()
        rewards = []
        for _ in range(self.config.tasks_per_round):
            task = next(self.stream)
            try:
                outcome = self.step(task)
            except ValueError as exc:  # nothing fits: nothing to learn from this task
                log.debug("task skipped: %s", exc)
                continue
            rewards.append(self.config.reward(task, outcome.quality, outcome))
        self._rounds += 1
        return RoundReport(
            round=self._rounds,
            version=self._version,
            epochs=1,
            steps=len(rewards) // self.config.batch,
            samples=len(rewards),
            train_loss=1.0 - float(np.mean(rewards)) if rewards else math.nan,
            heldout_loss=self.heldout_loss(),
            seconds=time.perf_counter() - start,
        )

    def greedy_policy(self, task: Task) -> Decision:
        """The deployment decision: the most likely choice at every step."""
        return self._greedy([task])[0]

    def _greedy(self, tasks: Sequence[Task]) -> list[Decision]:
        planned = self.latency.planned()
        scores = self.policy.scores(tasks, self.pool, planned, self.ratings)
        return [
            decide(Planner(self.pool, t, planned), t, s, greedy)[0]
            for t, s in zip(tasks, scores, strict=True)
        ]

    def evaluate(self, tasks: Sequence[Task]) -> Summary:
        """Greedy decisions on ``tasks`` (nothing is learned)."""
        decided = dict(zip((id(t) for t in tasks), self._greedy(tasks), strict=True))
        return summarise(lambda t: decided[id(t)], tasks, self.pool, self.backend, self.config.reward)

    def heldout_loss(self) -> float:
        """1 - the mean reward of greedy decisions on the fixed held-out tasks (every budget)."""
        key = (self._changes, self._version, self.latency.observed)
        if self._heldout is None or self._heldout[0] != key:
            self._heldout = (key, 1.0 - self.evaluate(self._eval).reward)
        return self._heldout[1]

    # ------------------------------------------------------------------ what the experts node learner uses

    @property
    def rounds(self) -> int:
        return self._rounds

    @property
    def samples(self) -> int:
        """What an update of this node weighs in an average: the tasks of a round."""
        return self.config.tasks_per_round

    @property
    def privacy(self) -> PrivacyConfig | None:
        return self.config.privacy

    def learning_rates(self) -> dict[str, float]:
        return {"policy": float(self._optimizer.param_groups[0]["lr"])}

    def set_learning_rates(self, rates: Mapping[str, float]) -> None:
        for name, lr in rates.items():
            if name != "policy" or not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
                raise ValueError(f"learning rate {name}={lr!r}: only a positive 'policy' rate exists")
        if "policy" in rates:
            for group in self._optimizer.param_groups:
                group["lr"] = float(rates["policy"])

    def affinity(self) -> dict[str, float]:
        return {self.domain: 1.0}

    def insight(self) -> ExpertInsight:
        """Per task type: 1 - mean reward and tasks seen, over the last 512 tasks."""
        by_type: dict[str, list[float]] = {}
        for kind, reward, _, _ in self._recent:
            by_type.setdefault(kind, []).append(reward)
        loss = {k: 1.0 - float(np.mean(v)) for k, v in by_type.items()}
        count = {k: len(v) for k, v in by_type.items()}
        recent = list(self._recent)
        avg = 1.0 - float(np.mean([r for _, r, _, _ in recent])) if recent else 1.0
        metrics = {
            "heldout_loss": self.heldout_loss(),
            "quality": float(np.mean([q for _, _, q, _ in recent])) if recent else 0.0,
            "cost": float(np.mean([c for _, _, _, c in recent])) if recent else 0.0,
            "tasks": float(self._tasks),
            "version": float(self._version),
            "rounds": float(self._rounds),
        }
        return ExpertInsight(
            expert_loss=loss, expert_samples=count, avg_loss=avg, total_samples=len(recent),
            domain=self.domain, metrics=metrics,
        )  # fmt: skip

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        return {
            "format": STATE_FORMAT,
            "pool": [m.name for m in self.pool],
            "weights": self.weights(),
            "base": self.base_weights(),
            "version": self._version,
            "rounds": self._rounds,
            "tasks": self._tasks,
            "lr": self.learning_rates()["policy"],
            "latency": self.latency.state(),
            "ratings": self.ratings.state(),
            "accountant": self._accountant.to_dict(),
            "history": self._history.to_dict(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`. The sampling RNG restarts from (seed, rounds). Raises ValueError."""
        try:
            if state["format"] != STATE_FORMAT:
                raise ValueError(f"unsupported braid state format {state['format']!r}")
            if list(state["pool"]) != [m.name for m in self.pool]:
                raise ValueError("the checkpoint is for another model pool")
            names = self._trainable
            weights = check_tensors(self._params, state["weights"], allowed=names, exact=True, what="weights")
            base = check_tensors(self._params, state["base"], allowed=names, exact=True, what="base")
            accountant = RDPAccountant.from_dict(state["accountant"])
            history = VersionHistory.from_dict(state["history"])
            version, rounds, tasks = int(state["version"]), int(state["rounds"]), int(state["tasks"])
            lr = float(state["lr"])
            self.latency.load_state(state["latency"])
            self.ratings.load_state(state["ratings"])
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed braid state: {exc!r}") from exc
        with torch.no_grad():
            for name, value in weights.items():
                self._params[name].copy_(value)
        self._base = base
        self._changes += 1
        self._optimizer = Adam(self.policy.parameters(), lr=lr)
        self._accountant, self._history = accountant, history
        self._version, self._rounds, self._tasks = version, rounds, tasks
        self._rng = np.random.default_rng([self.config.seed, rounds])
        self._pick = sampler(self._rng)

"""The coordinator's meta-engine: what the network reported in, one versioned ``meta`` out.

It observes three kinds of message and keeps the latest of each per sender:

* ``insight`` (experts nodes) goes to the bounded :class:`InsightMemory`; the
  per-round loss of each expert in a domain drives its learning rate
  (:func:`~metamesh.coordinator.meta.adapt_rate`);
* ``delta`` offsets from the domains' initial weights (experts nodes) give a
  domain's averaged model, towards which its initial weights take a Reptile
  step (:func:`~metamesh.coordinator.meta.reptile_step`);
* ``qtable`` rows (prompt learners) give a prior row per category over every
  domain (:func:`~metamesh.coordinator.meta.prior_row`) and an exploration
  rate from how settled it is (:func:`~metamesh.coordinator.meta.settled_epsilon`).

:meth:`MetaEngine.update` folds in what arrived since the last call and says
whether the meta-parameters changed; :meth:`MetaEngine.meta` renders them as
one ``meta`` body with the names of ``PROTOCOL.md`` section 5. The engine is
plain data and numpy: no sockets, no clock, no torch.
"""

from __future__ import annotations

import logging
import statistics
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from metamesh.coordinator.memory import InsightMemory, StoredInsight
from metamesh.coordinator.meta import adapt_rate, prior_row, reptile_step, settled_epsilon
from metamesh.protocol import Body, Delta, Insight, Meta, QTable
from metamesh.protocol._fields import is_name

__all__ = ["EngineConfig", "MetaEngine"]

log = logging.getLogger(__name__)

EXPERTS_MODEL = "experts"
#: Rate group of the experts' gate; its rate follows the domain's average loss.
GATE = "gate"
STATE_FORMAT = 1


@dataclass(frozen=True, slots=True, kw_only=True)
class EngineConfig:
    """How fast meta-parameters move. The defaults suit the built-in learners."""

    reptile_step: float = 0.5
    base_lr: float = 0.1
    """Where every learning rate starts (the experts learner's default)."""
    lr_bounds: tuple[float, float] = (0.025, 0.2)
    epsilon_start: float = 0.3
    epsilon_floor: float = 0.02


@dataclass(slots=True)
class _Offset:
    tensors: Mapping[str, np.ndarray]
    samples: int
    base_version: int


@dataclass(slots=True)
class _Init:
    """A domain's initial weights, as an offset from its ``w0`` (version ``base_version``)."""

    base_version: int
    offset: dict[str, np.ndarray]
    steps: int = 0


@dataclass(slots=True)
class _Rates:
    """Learning rates of one domain and the last round they were adapted at."""

    lrs: dict[str, float] = field(default_factory=dict)
    adapted_at: int = 0


class MetaEngine:
    """Observations in, meta-parameters out; ``state`` persists everything but live offsets."""

    def __init__(self, config: EngineConfig | None = None, memory: InsightMemory | None = None) -> None:
        self.config = config or EngineConfig()
        self.memory = memory or InsightMemory()
        self.offsets: dict[str, dict[str, _Offset]] = defaultdict(dict)  # domain -> sender -> latest
        self.rows: dict[str, dict[str, tuple[np.ndarray, np.ndarray]]] = defaultdict(dict)  # cat -> sender
        self.actions: list[str] = []  # every action label seen, in order of first sight
        self.inits: dict[str, _Init] = {}
        self.rates: dict[str, _Rates] = {}
        self.priors: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.epsilons: dict[str, float] = {}
        self.rejected: Counter[str] = Counter()
        self._dirty_domains: set[str] = set()
        self._dirty_categories: set[str] = set()
        self._dirty_insights: set[str] = set()

    # -- observing -----------------------------------------------------------

    def observe(self, sender: str, domain: str, body: Body, at: float) -> None:
        """Take in one validated message; anything unusable is counted in ``rejected``."""
        if isinstance(body, Insight):
            self.memory.add(StoredInsight.of(sender, domain, body, at))
            self._dirty_insights.add(domain)
        elif isinstance(body, Delta):
            self._observe_offset(sender, domain, body)
        elif isinstance(body, QTable):
            self._observe_rows(sender, body)

    def _observe_offset(self, sender: str, domain: str, body: Delta) -> None:
        if body.model != EXPERTS_MODEL:
            self.rejected["other_model"] += 1
            return
        shapes = {n: a.shape for n, a in body.tensors.items()}
        reference = self.inits.get(domain)
        known = (
            reference.offset
            if reference is not None
            else next((o.tensors for o in self.offsets[domain].values()), None)
        )
        if known is not None and {n: a.shape for n, a in known.items()} != shapes:
            self.rejected["tensor_shape"] += 1
            return
        if body.samples <= 0 or not all(a.dtype == np.float32 for a in body.tensors.values()):
            self.rejected["bad_delta"] += 1
            return
        self.offsets[domain][sender] = _Offset(body.tensors, body.samples, body.base_version)
        self._dirty_domains.add(domain)

    def _observe_rows(self, sender: str, body: QTable) -> None:
        visits = np.asarray(body.visits, dtype=np.float64)
        if (visits < 0).any() or (np.abs(body.values) > 100).any():
            self.rejected["bad_qtable"] += 1
            return
        for action in body.actions:
            if action not in self.actions:
                self.actions.append(action)
        index = [self.actions.index(a) for a in body.actions]
        for s, state in enumerate(body.states):
            if not is_name(f"prior.{state}"):
                self.rejected["category_name"] += 1
                continue
            values = np.zeros(len(self.actions))
            counts = np.zeros(len(self.actions))
            values[index] = body.values[s]
            counts[index] = visits[s]
            self.rows[state][sender] = (values, counts)
            self._dirty_categories.add(state)

    # -- updating ------------------------------------------------------------

    def update(self) -> bool:
        """Fold in what arrived since the last call; True if any meta-parameter changed."""
        changed = False
        for domain in sorted(self._dirty_domains):
            changed |= self._step_init(domain)
        for domain in sorted(self._dirty_insights):
            changed |= self._adapt_rates(domain)
        for category in sorted(self._dirty_categories):
            changed |= self._update_prior(category)
        self._dirty_domains.clear()
        self._dirty_insights.clear()
        self._dirty_categories.clear()
        return changed

    def _step_init(self, domain: str) -> bool:
        """Reptile: the domain's init moves a step towards its members' sample-weighted average."""
        offsets = list(self.offsets[domain].values())
        base = Counter(o.base_version for o in offsets).most_common(1)[0][0]
        offsets = [o for o in offsets if o.base_version == base]
        total = float(sum(o.samples for o in offsets))
        target = {
            name: np.sum([o.tensors[name] * (o.samples / total) for o in offsets], axis=0).astype(np.float32)
            for name in offsets[0].tensors
        }
        init = self.inits.get(domain)
        if init is None or init.base_version != base:
            init = self.inits[domain] = _Init(base, {n: np.zeros_like(t) for n, t in target.items()})
        init.offset = reptile_step(init.offset, target, self.config.reptile_step)
        init.steps += 1
        return True

    def _adapt_rates(self, domain: str) -> bool:
        """Adapt each expert's rate once per round the domain's clients have (mostly) reported."""
        per_round: dict[int, dict[str, list[tuple[float, int]]]] = defaultdict(lambda: defaultdict(list))
        latest: dict[str, int] = {}
        for item in self.memory.of_domain(domain):
            latest[item.client] = max(latest.get(item.client, 0), item.round)
            groups = per_round[item.round]
            groups[GATE].append((item.avg_loss, item.total_samples))
            for name, loss, n in zip(item.experts, item.expert_loss, item.expert_samples, strict=True):
                if n > 0:
                    groups[name].append((loss, n))
        if not latest:
            return False
        horizon = int(statistics.median_low(latest.values()))
        rates = self.rates.setdefault(domain, _Rates())
        if horizon <= rates.adapted_at:
            return False
        rounds = sorted(r for r in per_round if r <= horizon)
        names = sorted({n for r in rounds for n in per_round[r]})
        lo, hi = self.config.lr_bounds
        for name in names:
            series = [_weighted_mean(per_round[r][name]) for r in rounds if per_round[r].get(name)]
            previous = rates.lrs.get(name, self.config.base_lr)
            rates.lrs[name] = adapt_rate(previous, series, lo=lo, hi=hi)
        rates.adapted_at = horizon
        return True

    def _update_prior(self, category: str) -> bool:
        rows = [
            (_pad(v, len(self.actions)), _pad(n, len(self.actions))) for v, n in self.rows[category].values()
        ]
        prior = prior_row(rows)
        old = self.priors.get(category)
        self.priors[category] = prior
        self.epsilons[category] = settled_epsilon(
            *prior, start=self.config.epsilon_start, floor=self.config.epsilon_floor
        )
        return (
            old is None
            or old[0].shape != prior[0].shape
            or not (np.array_equal(old[0], prior[0]) and np.array_equal(old[1], prior[1]))
        )

    # -- rendering -----------------------------------------------------------

    def meta(self, version: int) -> Meta:
        """Every meta-parameter in one body (names in ``PROTOCOL.md`` section 5)."""
        params: dict[str, float] = {}
        tensors: dict[str, np.ndarray] = {}
        labels: dict[str, tuple[str, ...]] = {}
        for domain, init in sorted(self.inits.items()):
            params[f"{domain}:init_base"] = float(init.base_version)
            params[f"{domain}:init_steps"] = float(init.steps)
            for name, offset in init.offset.items():
                tensors[f"{domain}:init.{name}"] = offset
        for domain, rates in sorted(self.rates.items()):
            for name, lr in sorted(rates.lrs.items()):
                params[f"{domain}:lr.{name}"] = lr
        if self.priors:
            labels["actions"] = tuple(self.actions)
        for category, (values, visits) in sorted(self.priors.items()):
            tensors[f"prior.{category}"] = np.stack(
                [_pad(values, len(self.actions)), _pad(visits, len(self.actions))]
            )
            params[f"eps.{category}"] = self.epsilons[category]
        return Meta(version=version, params=params, labels=labels, tensors=tensors)

    def summary(self) -> dict[str, float]:
        return {
            "insights": float(len(self.memory)),
            "insights_dropped": float(self.memory.dropped),
            "domains": float(len(set(self.inits) | set(self.rates))),
            "categories": float(len(self.priors)),
            "offsets": float(sum(len(o) for o in self.offsets.values())),
            "rejected": float(sum(self.rejected.values())),
        }

    # -- persistence ---------------------------------------------------------

    def state(self) -> dict[str, Any]:
        """The memory and every meta-parameter; live offsets and rows are re-learnt from the network."""
        return {
            "format": STATE_FORMAT,
            "memory": self.memory.state(),
            "inits": {
                d: {"base": i.base_version, "steps": i.steps, "offset": dict(i.offset)}
                for d, i in self.inits.items()
            },
            "rates": {d: {"lrs": dict(r.lrs), "adapted_at": r.adapted_at} for d, r in self.rates.items()},
            "actions": list(self.actions),
            "priors": {c: np.stack([v, n]) for c, (v, n) in self.priors.items()},
            "epsilons": dict(self.epsilons),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore :meth:`state`. Raises ValueError if it is malformed (nothing is half-restored)."""
        try:
            if state["format"] != STATE_FORMAT:
                raise ValueError(f"unsupported engine format {state['format']!r}")
            memory = InsightMemory(
                total=self.memory.total, per_domain=self.memory.per_domain, per_client=self.memory.per_client
            )
            memory.load_state(state["memory"])
            inits = {
                str(d): _Init(
                    int(i["base"]),
                    {str(n): np.asarray(t, np.float32) for n, t in i["offset"].items()},
                    int(i["steps"]),
                )
                for d, i in state["inits"].items()
            }
            rates = {
                str(d): _Rates({str(k): float(v) for k, v in r["lrs"].items()}, int(r["adapted_at"]))
                for d, r in state["rates"].items()
            }
            actions = [str(a) for a in state["actions"]]
            priors = {}
            for c, pair in state["priors"].items():
                array = np.asarray(pair, np.float64)
                if array.shape != (2, len(actions)):
                    raise ValueError(f"prior {c!r} has shape {array.shape}")
                priors[str(c)] = (array[0].copy(), array[1].copy())
            epsilons = {str(c): float(e) for c, e in state["epsilons"].items()}
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed engine state: {exc!r}") from exc
        self.memory, self.inits, self.rates = memory, inits, rates
        self.actions, self.priors, self.epsilons = actions, priors, epsilons


def _weighted_mean(pairs: list[tuple[float, int]]) -> float:
    total = sum(n for _, n in pairs)
    return sum(x * n for x, n in pairs) / total if total else float("nan")


def _pad(row: np.ndarray, n: int) -> np.ndarray:
    """A row over the first ``len(row)`` actions, extended with zeros to ``n`` (actions seen later)."""
    out = np.zeros(n)
    out[: len(row)] = row
    return out

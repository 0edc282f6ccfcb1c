"""Tasks a braid policy decides for, their features, and the streams nodes learn from.

A task has a type, a complexity in [0, 1], one or more parts (a ``multi``
task's parts are of different types: "explain HIPAA for medical software"),
and the two limits the decision must respect: a compute budget (in the
pool's cost units) and a latency limit. Features are named, so an
explanation can say which inputs drove a decision.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from metamesh.errors import ConfigError

from .pool import CAPABILITIES

__all__ = [
    "DEFAULT_MIX",
    "PART_TYPES",
    "TASK_FEATURES",
    "TASK_TYPES",
    "Task",
    "TaskStream",
    "eval_tasks",
    "parse_mix",
    "task_features",
]

#: Types a part can have, and what each needs.
NEEDS: Mapping[str, tuple[str, ...]] = {
    "code": ("code", "reasoning"),
    "math": ("math", "reasoning"),
    "medical": ("medical", "knowledge"),
    "qa": ("knowledge",),
    "legal": ("legal", "knowledge"),
}
PART_TYPES = tuple(NEEDS)
#: Task types the encoder has a slot for; any other type is ``other``.
TASK_TYPES = (*PART_TYPES, "multi", "other")
#: The experiment's training stream: legal is left out, for the few-shot test.
DEFAULT_MIX: Mapping[str, float] = {"code": 0.2, "math": 0.2, "medical": 0.2, "qa": 0.2, "multi": 0.2}
MULTI_PARTS = ("code", "math", "medical", "qa")

TASK_FEATURES: tuple[str, ...] = (
    *(f"type={t}" for t in TASK_TYPES),
    "complexity",
    "parts",
    *(f"needs:{c}" for c in CAPABILITIES),
    "log_budget",
    "log_latency_limit",
)


@dataclass(frozen=True, slots=True)
class Task:
    id: int
    """Also the seed of a simulated model's answer to it: the same task gets the same answers."""
    type: str
    complexity: float
    parts: tuple[str, ...]
    budget: float
    latency_limit_ms: float

    @property
    def needs(self) -> tuple[str, ...]:
        return tuple(c for c in CAPABILITIES if any(c in NEEDS.get(p, ()) for p in self.parts))

    def with_limits(self, budget: float, latency_limit_ms: float) -> Task:
        return Task(self.id, self.type, self.complexity, self.parts, budget, latency_limit_ms)

    def as_part(self, part: str) -> Task:
        """The task as the router sees one of its parts."""
        return Task(self.id, part, self.complexity, (part,), self.budget, self.latency_limit_ms)

    def describe(self) -> str:
        parts = f", parts {'+'.join(self.parts)}" if len(self.parts) > 1 else ""
        return (
            f"{self.type} task (complexity {self.complexity:.2f}{parts}), "
            f"budget {self.budget:g}, latency limit {self.latency_limit_ms:,.0f} ms"
        )


def task_features(task: Task) -> list[float]:
    """The task as the numbers :data:`TASK_FEATURES` names."""
    slot = task.type if task.type in TASK_TYPES else "other"
    needs = set(task.needs)
    return [
        *(1.0 if t == slot else 0.0 for t in TASK_TYPES),
        task.complexity,
        (len(task.parts) - 1) / 2.0,
        *(1.0 if c in needs else 0.0 for c in CAPABILITIES),
        math.log10(task.budget),
        math.log10(task.latency_limit_ms) - 3.0,
    ]


def parse_mix(text: str) -> dict[str, float]:
    """``code=0.4,math=0.3,...`` -> normalised weights; empty -> :data:`DEFAULT_MIX`. Raises ConfigError."""
    if not text:
        return dict(DEFAULT_MIX)
    mix: dict[str, float] = {}
    for item in text.split(","):
        name, sep, value = item.partition("=")
        name = name.strip()
        try:
            weight = float(value) if sep else 1.0
        except ValueError:
            weight = -1.0
        if name not in (*PART_TYPES, "multi") or weight < 0:
            kinds = ", ".join((*PART_TYPES, "multi"))
            raise ConfigError(f"--task-mix: {item!r} is not TYPE=WEIGHT with TYPE one of {kinds}")
        mix[name] = weight
    total = sum(mix.values())
    if total <= 0:
        raise ConfigError("--task-mix: the weights add up to 0")
    return {k: v / total for k, v in mix.items()}


#: Seed namespaces: a node's training stream and an evaluation set never draw the same tasks,
#: whatever their seeds (node seeds once ran into the held-out seed).
_PURPOSES = {"train": 0xB4A1D, "eval": 0xE7A15E7}


class TaskStream:
    """An endless seeded stream of tasks: types drawn from ``mix``, budgets from ``budgets``.

    ``purpose`` (``train`` or ``eval``) keeps training streams and evaluation sets apart: the
    same seed draws different tasks for each.
    """

    def __init__(
        self,
        mix: Mapping[str, float],
        *,
        budgets: Sequence[float],
        latency_limit_ms: float,
        seed: int = 0,
        purpose: str = "train",
    ) -> None:
        if purpose not in _PURPOSES:
            raise ConfigError(f"a task stream's purpose is one of {', '.join(_PURPOSES)}, got {purpose!r}")
        if not budgets or min(budgets) <= 0 or latency_limit_ms <= 0:
            raise ConfigError("budgets and the latency limit must be positive")
        self.mix = dict(mix)
        self.budgets = tuple(float(b) for b in budgets)
        self.latency_limit_ms = float(latency_limit_ms)
        self._rng = np.random.default_rng([seed, _PURPOSES[purpose]])
        self._types = list(self.mix)
        self._p = np.array([self.mix[t] for t in self._types]) / sum(self.mix.values())

    def __iter__(self) -> Iterator[Task]:
        return self

    def __next__(self) -> Task:
        rng = self._rng
        kind = str(self._types[int(rng.choice(len(self._types), p=self._p))])
        if kind == "multi":
            n = int(rng.integers(2, 4))
            parts = tuple(str(p) for p in rng.choice(MULTI_PARTS, size=n, replace=False))
        else:
            parts = (kind,)
        return Task(
            id=int(rng.integers(1, 2**62)),
            type=kind,
            complexity=round(float(rng.uniform(0.05, 0.95)), 3),
            parts=parts,
            budget=self.budgets[int(rng.integers(len(self.budgets)))],
            latency_limit_ms=self.latency_limit_ms,
        )


def eval_tasks(
    n: int, mix: Mapping[str, float], *, budget: float, latency_limit_ms: float, seed: int = 999
) -> list[Task]:
    """A fixed held-out set: the same ``seed`` gives the same tasks (and simulated answers) everywhere."""
    stream = TaskStream(mix, budgets=[budget], latency_limit_ms=latency_limit_ms, seed=seed, purpose="eval")
    return [next(stream) for _ in range(n)]

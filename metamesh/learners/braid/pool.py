"""The model pool: descriptors of black-box LLMs, and the simulated pool that runs offline.

A descriptor says what a router can know before calling a model: its size,
what it specialises in, its context, its quantisation, what a call costs and
how long one typically takes. The braid policy reads descriptors, never
weights, so a pool can mix Ollama models and OpenAI-compatible endpoints.

The simulated pool is six models with different skills per task type (the
table in ``docs/braid.md``): four 7-13B specialists that are strong on their
own type and weak elsewhere, a cheap 1B generalist, and a 70B generalist that
is good at everything and costs six specialist calls. Its answers are
deterministic per (task, model), like a real model at temperature 0, so every
arm and baseline is measured on the same outcomes.
"""

from __future__ import annotations

import hashlib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from metamesh.errors import ConfigError

__all__ = [
    "CAPABILITIES",
    "MODEL_FEATURES",
    "QUANTISATION_BITS",
    "SIMULATED_POOL",
    "ModelDescriptor",
    "load_pool",
    "model_features",
    "pool_digest",
]

#: What a task can need and a model can specialise in.
CAPABILITIES = ("code", "math", "medical", "legal", "knowledge", "reasoning")
QUANTISATION_BITS = {"fp32": 32, "fp16": 16, "bf16": 16, "8bit": 8, "4bit": 4}


@dataclass(frozen=True, slots=True, kw_only=True)
class ModelDescriptor:
    """One model of the pool. ``cost`` is in the same units as a task's compute budget."""

    name: str
    size_b: float
    """Parameters, in billions."""
    specialisation: tuple[str, ...]
    context: int
    quantisation: str
    cost: float
    """Cost of one call (for example cents, or GPU-seconds): what budgets are measured in."""
    latency_ms: float
    """Typical latency of one call; the policy plans with a measured 99th percentile once it has one."""
    backend: str = "sim"
    """``sim``, ``ollama:MODEL`` or ``openai:URL:MODEL``."""
    skills: Mapping[str, float] = field(default_factory=dict)
    """Simulated models only: P(right answer) per task type at complexity 0."""
    fragility: float = 0.25
    """Simulated models only: how much P(right) falls from complexity 0 to 1."""

    def __post_init__(self) -> None:
        problems = []
        if not self.name:
            problems.append("a model needs a name")
        if not (self.size_b > 0 and self.context > 0 and self.cost > 0 and self.latency_ms > 0):
            problems.append("size_b, context, cost and latency_ms must be positive")
        unknown = sorted(set(self.specialisation) - set(CAPABILITIES))
        if unknown:
            problems.append(f"unknown specialisation {unknown}; known: {', '.join(CAPABILITIES)}")
        if self.quantisation not in QUANTISATION_BITS:
            problems.append(f"quantisation must be one of {', '.join(QUANTISATION_BITS)}")
        if any(not 0 <= p <= 1 for p in self.skills.values()) or not 0 <= self.fragility <= 1:
            problems.append("skills and fragility must be in [0, 1]")
        if problems:
            raise ConfigError(f"model {self.name!r}: " + "; ".join(problems))

    def p_right(self, task_type: str, complexity: float) -> float:
        """Simulated: the chance this model answers a part of this type right."""
        base = self.skills.get(task_type, self.skills.get("default", 0.3))
        return min(0.98, max(0.02, base - self.fragility * complexity))


def _sim(  # noqa: PLR0917
    name: str, size: float, spec: tuple[str, ...], ctx: int, quant: str, cost: float, ms: float,
         frag: float, **skills: float) -> ModelDescriptor:  # fmt: skip
    return ModelDescriptor(name=name, size_b=size, specialisation=spec, context=ctx, quantisation=quant,
                           cost=cost, latency_ms=ms, skills=skills, fragility=frag)  # fmt: skip


#: The offline pool. Legal tasks are left out of the experiment's training stream: ``lex-7b`` is
#: the specialist a policy has to find for a task type it has never seen.
SIMULATED_POOL: tuple[ModelDescriptor, ...] = (
    _sim("tiny-1b", 1, ("knowledge",), 4096, "4bit", 0.2, 80, 0.40,
         code=0.35, math=0.30, medical=0.35, qa=0.62, legal=0.35),
    _sim("coder-7b", 7, ("code", "reasoning"), 16384, "8bit", 1.0, 300, 0.20,
         code=0.94, math=0.55, medical=0.30, qa=0.50, legal=0.30),
    _sim("medic-7b", 7, ("medical", "knowledge"), 8192, "8bit", 1.0, 300, 0.20,
         code=0.30, math=0.35, medical=0.94, qa=0.62, legal=0.45),
    _sim("lex-7b", 7, ("legal", "knowledge"), 8192, "8bit", 1.0, 300, 0.20,
         code=0.30, math=0.35, medical=0.45, qa=0.62, legal=0.94),
    _sim("math-13b", 13, ("math", "reasoning"), 8192, "8bit", 2.0, 500, 0.15,
         code=0.62, math=0.94, medical=0.40, qa=0.55, legal=0.45),
    _sim("general-70b", 70, ("knowledge", "reasoning"), 131072, "fp16", 6.0, 1500, 0.10,
         code=0.80, math=0.78, medical=0.78, qa=0.88, legal=0.76),
)  # fmt: skip


#: Names of a model's own features, in the order :func:`model_features` returns them.
MODEL_FEATURES: tuple[str, ...] = (
    "log_size",
    *(f"spec:{c}" for c in CAPABILITIES),
    "log_context",
    "quant_bits",
    "log_cost",
    "log_latency",
)


def model_features(model: ModelDescriptor) -> list[float]:
    """Descriptor -> numbers on roughly unit scale (logs of sizes, costs and latencies)."""
    return [
        math.log10(model.size_b),
        *(1.0 if c in model.specialisation else 0.0 for c in CAPABILITIES),
        math.log10(model.context) - 4.0,
        QUANTISATION_BITS[model.quantisation] / 16.0,
        math.log10(model.cost),
        math.log10(model.latency_ms) - 2.5,
    ]


def pool_digest(pool: Sequence[ModelDescriptor]) -> str:
    """Eight hex digits naming a pool's models and descriptors: policies of different pools never merge."""
    doc = [[m.name, m.size_b, list(m.specialisation), m.context, m.quantisation, m.cost, m.latency_ms]
           for m in pool]  # fmt: skip
    return hashlib.sha256(json.dumps(doc).encode()).hexdigest()[:8]


def load_pool(spec: str) -> tuple[ModelDescriptor, ...]:
    """``sim`` (the simulated pool) or a TOML/JSON file with a ``[[model]]`` table per model.

    Each model table has the descriptor's fields; ``backend`` defaults to ``sim``
    and then ``skills`` (per task type) must be given. Raises ConfigError.
    """
    if spec in ("", "sim"):
        return SIMULATED_POOL
    path = Path(spec)
    try:
        text = path.read_text()
        doc = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--pool {spec}: {exc}") from exc
    rows = doc.get("model") if isinstance(doc, dict) else None
    if not isinstance(rows, list) or len(rows) < 2:
        raise ConfigError(f"--pool {spec}: expected at least two [[model]] tables")
    pool = []
    for raw in rows:
        try:
            row = dict(raw)
            row["specialisation"] = tuple(row.get("specialisation", ()))
            row["skills"] = dict(row.get("skills", {}))
            pool.append(ModelDescriptor(**row))
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"--pool {spec}: model {raw!r}: {exc}") from exc
    names = [m.name for m in pool]
    if len(set(names)) != len(names):
        raise ConfigError(f"--pool {spec}: model names repeat")
    return tuple(pool)

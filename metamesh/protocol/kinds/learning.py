"""What learners share: insights, Q-tables, weight deltas and prompts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, ClassVar

import msgspec
import numpy as np

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol._fields import (
    _KNOWN_NAMES,
    MAX_ITEMS,
    Count,
    Labels,
    Name,
    NonNegative,
    Number,
    Text,
    names_ok,
    unique,
)
from metamesh.protocol.kinds.base import Body, bad
from metamesh.protocol.limits import LAN, Limits

__all__ = ["Delta", "Insight", "Prompt", "QTable"]

_Metrics = Annotated[Mapping[Name, Number], msgspec.Meta(max_length=MAX_ITEMS)]


class Insight(Body, frozen=True):
    """What a node learned this round, without its data (seed 001's insight schema).

    Per-expert figures are parallel lists, as on the wire: ``loss[i]`` and
    ``samples[i]`` belong to ``experts[i]``. ``metrics`` is learner-specific
    (accuracy, epsilon, and a monitor's ``drift``, ``alignment``, ...); every
    key is optional.
    """

    KIND: ClassVar[str] = "insight"
    NAMES = ("experts", "metrics")
    experts: Annotated[list[Name], msgspec.Meta(max_length=MAX_ITEMS)]
    loss: list[NonNegative]
    samples: list[Count]
    avg_loss: NonNegative
    total_samples: Count
    round: Count = 0
    metrics: _Metrics = msgspec.field(default_factory=dict)

    @classmethod
    def of(
        cls,
        expert_loss: Mapping[str, float],
        expert_samples: Mapping[str, int],
        *,
        avg_loss: float,
        total_samples: int,
        round: int = 0,
        metrics: Mapping[str, float] | None = None,
    ) -> Insight:
        """Build from per-expert maps, the way a learner usually holds them."""
        names = list(expert_loss)
        return cls(
            names,
            [float(expert_loss[k]) for k in names],
            [int(expert_samples[k]) for k in names],
            float(avg_loss),
            int(total_samples),
            int(round),
            dict(metrics or {}),
        )

    @property
    def expert_loss(self) -> dict[str, float]:
        return dict(zip(self.experts, self.loss, strict=True))

    @property
    def expert_samples(self) -> dict[str, int]:
        return dict(zip(self.experts, self.samples, strict=True))

    def check(self, limits: Limits) -> None:
        # The most frequent message: Body.check's rules inlined, each a C-level builtin.
        names, metrics = self.experts, self.metrics
        distinct = set(names)
        if not len(names) == len(self.loss) == len(self.samples) == len(distinct):
            raise bad("experts", [names, self.loss, self.samples])
        if not (distinct <= _KNOWN_NAMES and _KNOWN_NAMES.issuperset(metrics)) and not (
            names_ok(names) and names_ok(metrics)
        ):
            raise bad("experts", [names, list(metrics)])
        if limits is not LAN and (limits.max_list_len < MAX_ITEMS or limits.max_map_len < MAX_ITEMS):
            self.within(limits)


_FLOATS = frozenset({"<f4", "<f8"})
_TABLE_DTYPES = frozenset({"<f4", "<f8", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8"})


class QTable(Body, frozen=True, eq=False):
    """A Q-learner's values and visit counts over (state, action).

    Labels are free text, unique per axis: ``states`` are what the learner
    tells apart (question categories), ``actions`` what it chooses among
    (prompt strategies); ``values[i, j]`` is the estimated return of action
    ``j`` in state ``i`` and ``visits[i, j]`` how often it was taken.
    """

    KIND: ClassVar[str] = "qtable"
    ARRAYS = ("values", "visits")
    states: Labels
    actions: Labels
    values: np.ndarray
    visits: np.ndarray
    episodes: Count = 0

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        if not unique(self.states) or not unique(self.actions):
            raise bad("states", "duplicate labels")
        shape = (len(self.states), len(self.actions))
        if self.values.shape != shape or self.visits.shape != shape:
            raise ProtocolError(
                Reason.SHAPE_MISMATCH,
                f"values {self.values.shape}, visits {self.visits.shape}, labels {shape}",
            )
        if self.values.dtype.str not in _FLOATS or self.visits.dtype.str not in _TABLE_DTYPES:
            raise ProtocolError(Reason.BAD_DTYPE, f"values {self.values.dtype}, visits {self.visits.dtype}")


_Tensors = Annotated[Mapping[Name, np.ndarray], msgspec.Meta(max_length=MAX_ITEMS)]


class Delta(Body, frozen=True, eq=False):
    """A weight update against ``base_version``, as named tensors (seed 002).

    ``model`` names what the tensors belong to; a receiver refuses a delta
    of another model (``other_model``) or whose tensors do not match its own
    (``shape_mismatch``).
    """

    KIND: ClassVar[str] = "delta"
    NAMES = ("model", "tensors")
    ARRAYS = ("tensors",)
    model: Name
    tensors: _Tensors
    base_version: Count
    samples: Count
    round: Count = 0
    clip_norm: NonNegative | None = None
    noise_multiplier: NonNegative | None = None


class Prompt(Body, frozen=True):
    """A prompt template that worked for a task, with the sender's own (untrusted) score."""

    KIND: ClassVar[str] = "prompt"
    NAMES = ("task",)
    task: Name
    template: Text
    score: Number
    samples: Count
    strategy: Text = ""
    generation: Count = 0

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        if "{question}" not in self.template:
            raise bad("template", "no {question} placeholder")

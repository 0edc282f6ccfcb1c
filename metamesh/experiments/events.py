"""What the studies read from a node's event log, as typed records decoded once at the boundary.

A node writes one JSON object per line to ``<home>/events.jsonl``; :func:`decode` turns
the kinds the studies and ``metamesh report`` read into frozen records, and drops
every other kind and every line that lacks a field or holds a wrong type (a log is
read while its node writes it, and after a crash). :class:`NodeLog` is one node's
decoded log, with the lookups every study needs.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from metamesh.node import eventfiles

__all__ = [
    "Adoption",
    "BraidEval",
    "Diverged",
    "Done",
    "Eval",
    "Event",
    "Iteration",
    "Monitor",
    "NodeLog",
    "PeerWeight",
    "Quarantine",
    "Round",
    "Start",
    "decode",
    "read_log",
]


@dataclass(frozen=True, slots=True)
class Start:
    node: str


@dataclass(frozen=True, slots=True)
class Eval:
    """A prompt learner's greedy evaluation on held-out questions."""

    episodes: int
    accuracy: float


@dataclass(frozen=True, slots=True)
class Round:
    """A training round of an experts or braid learner, with its held-out loss."""

    round: int
    heldout_loss: float
    epsilon: float | None = None
    """Differential privacy spent so far, on a private node."""


@dataclass(frozen=True, slots=True)
class Iteration:
    """A prompt-evolution step in one category: the best validation score and the calls so far."""

    category: str
    best: float
    calls: int


@dataclass(frozen=True, slots=True)
class Adoption:
    """A prompt received from a peer, adopted or refused after scoring it locally."""

    adopted: bool


@dataclass(frozen=True, slots=True)
class Monitor:
    episodes: int
    drift: float | None
    alignment: float | None
    coherence: float | None
    changes: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class PeerWeight:
    peer: str
    weight: float


@dataclass(frozen=True, slots=True)
class Quarantine:
    peer: str
    state: str


@dataclass(frozen=True, slots=True)
class BraidEval:
    budgets: Mapping[str, Mapping[str, Any]]
    explanations: tuple[str, ...]
    new_type: Any


@dataclass(frozen=True, slots=True)
class Diverged:
    """A private experts node whose loss diverged: it fell back to training alone."""

    round: int
    epsilon: float | None


@dataclass(frozen=True, slots=True)
class Done:
    """A node finished learning; which figures it carries depends on its learner."""

    accuracy: float | None = None
    best: Mapping[str, str] | None = None
    heldout_loss: float | None = None
    epsilon: float | None = None
    static: float | None = None
    evolved: float | None = None
    calls: int | None = None


Event = (
    Start
    | Eval
    | Round
    | Iteration
    | Adoption
    | Monitor
    | PeerWeight
    | Quarantine
    | BraidEval
    | Diverged
    | Done
)
E = TypeVar("E", bound=Event)


def _opt(raw: Mapping[str, Any], key: str) -> float | None:
    value = raw.get(key)
    return None if value is None else float(value)


def _decode(raw: Mapping[str, Any]) -> Event | None:
    match raw.get("event"):
        case "start":
            return Start(str(raw["node"]))
        case "eval":
            return Eval(int(raw["episodes"]), float(raw["accuracy"]))
        case "round":
            return Round(int(raw["round"]), float(raw["heldout_loss"]), _opt(raw, "epsilon"))
        case "iteration":
            return Iteration(str(raw["category"]), float(raw["best"]), int(raw["calls"]))
        case "adopted" | "refused" as kind:
            return Adoption(kind == "adopted")
        case "monitor":
            changes = tuple(str(c) for c in raw.get("changes", ()))
            drift, alignment, coherence = (_opt(raw, k) for k in ("drift", "alignment", "coherence"))
            return Monitor(int(raw["episodes"]), drift, alignment, coherence, changes)
        case "peer_weight":
            return PeerWeight(str(raw["peer"]), float(raw["weight"]))
        case "quarantine":
            return Quarantine(str(raw["peer"]), str(raw["state"]))
        case "braid_eval":
            return BraidEval(dict(raw["budgets"]), tuple(map(str, raw["explanations"])), raw["new_type"])
        case "dp_diverged":
            return Diverged(int(raw["round"]), _opt(raw, "epsilon"))
        case "done":
            return _done(raw)
    return None


def _done(raw: Mapping[str, Any]) -> Done:
    """Every ``done`` line is a Done, whatever its figures: a node waited on must be seen to finish."""

    def figure(key: str) -> float | None:
        try:
            return _opt(raw, key)
        except (TypeError, ValueError):
            return None

    best = raw.get("best")
    calls = figure("calls")
    return Done(
        accuracy=figure("accuracy"),
        best={str(k): str(v) for k, v in best.items()} if isinstance(best, Mapping) else None,
        heldout_loss=figure("heldout_loss"),
        epsilon=figure("epsilon"),
        static=figure("static"),
        evolved=figure("evolved"),
        calls=None if calls is None else int(calls),
    )


def decode(raw: Mapping[str, Any]) -> Event | None:
    """The typed record of one log line, or None for a kind no study reads or a malformed line."""
    try:
        return _decode(raw)
    except (KeyError, TypeError, ValueError):
        return None


@dataclass(frozen=True, slots=True)
class NodeLog:
    """One node's decoded event log."""

    node: str
    events: tuple[Event, ...]

    @classmethod
    def of(cls, node: str, raw: Iterable[Mapping[str, Any]]) -> NodeLog:
        decoded = (decode(r) for r in raw if isinstance(r, Mapping))
        return cls(node, tuple(e for e in decoded if e is not None))

    def all(self, kind: type[E]) -> list[E]:
        return [e for e in self.events if isinstance(e, kind)]

    def first(self, kind: type[E]) -> E | None:
        return next((e for e in self.events if isinstance(e, kind)), None)

    def last(self, kind: type[E]) -> E | None:
        return next((e for e in reversed(self.events) if isinstance(e, kind)), None)

    @property
    def done(self) -> Done | None:
        return self.first(Done)


def read_log(home: Path) -> NodeLog:
    """The log of the node in ``home``, rotated files included, named by its ``start`` event
    (else by the folder)."""
    raw = eventfiles.read_events(home / "events.jsonl")
    log = NodeLog.of(home.name, raw)
    start = log.first(Start)
    return log if start is None else NodeLog(start.node, log.events)

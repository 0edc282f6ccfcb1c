"""One typed definition per message kind, with its wire form.

Messages are values: never mutate one after it is built or decoded (a relay
forwards the original frames, so a mutation would not even travel). They are
slotted dataclasses rather than frozen ones because a frozen dataclass costs
2-4 us more per decoded message on the target hardware, a fifth of the whole
codec budget (``bench/codec.py``).

A body knows how to lay itself out as a msgpack map (``pack``) and how to be
rebuilt from an untrusted map (``unpack``), which validates every field and
raises :class:`~metamesh.errors.ProtocolError` with a reason. Arrays are not
in the map: the map holds their index into the message's array frames.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np

from metamesh.errors import ProtocolError, Reason
from tests.protocol.v1 import _fields as f
from tests.protocol.v1.arrays import as_wire_array
from tests.protocol.v1.endpoints import parse_tcp
from tests.protocol.v1.limits import Limits

__all__ = [
    "KINDS",
    "Body",
    "Bye",
    "Delta",
    "Graft",
    "Heartbeat",
    "Hello",
    "Insight",
    "Meta",
    "PeerAddr",
    "Prompt",
    "Prune",
    "QTable",
    "Snapshot",
    "SnapshotRequest",
    "Status",
    "StatusRequest",
]


class ArrayTable:
    """The arrays of one message, each taken by exactly one body field."""

    __slots__ = ("_arrays", "_taken")

    def __init__(self, arrays: list[np.ndarray]) -> None:
        self._arrays = arrays
        self._taken = 0

    def take(self, key: str, ref: Any) -> np.ndarray:
        if type(ref) is not int or not 0 <= ref < len(self._arrays):
            raise ProtocolError(Reason.BAD_ARRAY, f"{key} refers to array {ref!r:.20}")
        self._taken += 1
        return self._arrays[ref]

    def check_all_taken(self) -> None:
        if self._taken != len(self._arrays):
            raise ProtocolError(
                Reason.BAD_ARRAY, f"{len(self._arrays)} array frames, {self._taken} referenced"
            )


def _put(arrays: list[np.ndarray], value: Any) -> int:
    arrays.append(as_wire_array(value))
    return len(arrays) - 1


def _tensor_map(p: Mapping[str, Any], key: str, table: ArrayTable, limits: Limits) -> dict[str, np.ndarray]:
    refs = f.get(p, key)
    if type(refs) is not dict or len(refs) > limits.max_arrays:
        raise f.bad(key, refs)
    out = {}
    for name, ref in refs.items():
        if not f.is_name(name):
            raise f.bad(key, name)
        out[name] = table.take(f"{key}.{name}", ref)
    return out


@dataclass(frozen=True, slots=True)
class PeerAddr:
    """Where to reach a peer: its id, PUB and ROUTER endpoints."""

    id: str
    pub: str
    router: str

    def pack(self) -> list[str]:
        return [self.id, self.pub, self.router]


@functools.lru_cache(maxsize=4096)
def _is_endpoint(value: str) -> bool:
    """Cached: a heartbeat carries up to 32 peers' endpoints, the same ones second after second."""
    try:
        parse_tcp(value)
    except ValueError:
        return False
    return True


def _endpoint(value: Any, key: str) -> str:
    if type(value) is not str or not 6 <= len(value) <= 256 or not _is_endpoint(value):
        raise f.bad(key, value)
    return value


def _peers(p: Mapping[str, Any], key: str, limits: Limits) -> tuple[PeerAddr, ...]:
    value = p.get(key, [])
    if type(value) is not list or len(value) > min(limits.max_list_len, 1024):
        raise f.bad(key, value)
    out = []
    for item in value:
        if type(item) is not list or len(item) != 3:
            raise f.bad(key, item)
        pid, pub, router = item
        if not f.is_name(pid):
            raise f.bad(key, pid)
        out.append(PeerAddr(pid, _endpoint(pub, key), _endpoint(router, key)))
    return tuple(out)


class Body:
    """Base of every message body. ``KIND`` is its name on the wire."""

    __slots__ = ()
    KIND: ClassVar[str]

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        raise NotImplementedError

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        raise NotImplementedError


@dataclass(slots=True)
class Hello(Body):
    """First message to a new peer: where to reach me, my domains, whom I know."""

    KIND: ClassVar[str] = "hello"
    pub: str
    router: str
    domains: tuple[str, ...] = ()
    peers: tuple[PeerAddr, ...] = ()
    name: str = ""

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {**_pack_presence(self), "name": self.name}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(*_unpack_presence(p, limits), name=f.text(p, "name", limits, default=""))


@dataclass(slots=True)
class Heartbeat(Body):
    """Periodic liveness, carrying the same peer exchange as hello."""

    KIND: ClassVar[str] = "heartbeat"
    pub: str
    router: str
    domains: tuple[str, ...] = ()
    peers: tuple[PeerAddr, ...] = ()
    uptime: float = 0.0

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {**_pack_presence(self), "uptime": self.uptime}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(*_unpack_presence(p, limits), uptime=f.number(p, "uptime", lo=0.0))


def _pack_presence(body: Hello | Heartbeat) -> dict[str, Any]:
    """The fields hello and heartbeat share: where to reach the sender, and whom it knows."""
    return {
        "pub": body.pub,
        "router": body.router,
        "domains": list(body.domains),
        "peers": [x.pack() for x in body.peers],
    }


def _unpack_presence(
    p: Mapping[str, Any], limits: Limits
) -> tuple[str, str, tuple[str, ...], tuple[PeerAddr, ...]]:
    return (
        _endpoint(f.get(p, "pub"), "pub"),
        _endpoint(f.get(p, "router"), "router"),
        f.names(p, "domains", limits, default=True),
        _peers(p, "peers", limits),
    )


@dataclass(slots=True)
class Bye(Body):
    """Graceful leave: peers drop the sender at once instead of waiting for timeouts."""

    KIND: ClassVar[str] = "bye"
    reason: str = ""

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {"reason": self.reason}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(reason=f.text(p, "reason", limits, default=""))


@dataclass(slots=True)
class Insight(Body):
    """What a node learned this round, without its data (seed 001's insight schema).

    Per-expert figures are parallel lists, as on the wire: ``loss[i]`` and
    ``samples[i]`` belong to ``experts[i]``. This is the most frequent message,
    so it is shaped to encode and validate without a Python loop.
    """

    KIND: ClassVar[str] = "insight"
    experts: list[str]
    loss: list[float]
    samples: list[int]
    avg_loss: float
    total_samples: int
    round: int = 0
    metrics: Mapping[str, float] = field(default_factory=dict)

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

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {
            "experts": self.experts,
            "loss": self.loss,
            "samples": self.samples,
            "avg_loss": self.avg_loss,
            "total_samples": self.total_samples,
            "round": self.round,
            "metrics": self.metrics,
        }

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        # Bulk checks with C-level builtins; no per-expert Python loop.
        names, losses, samples = f.get(p, "experts"), f.get(p, "loss"), f.get(p, "samples")
        if (
            type(names) is not list
            or type(losses) is not list
            or type(samples) is not list
            or not len(names) == len(losses) == len(samples) <= limits.max_map_len
            or not f.all_names(names)
            or not f.finite_floats(losses, 0.0)
            or not f.counts(samples)
            or len(set(names)) != len(names)
        ):
            raise f.bad("experts", [names, losses, samples])
        return cls(
            names,
            losses,
            samples,
            f.number(p, "avg_loss", lo=0.0),
            f.integer(p, "total_samples"),
            f.integer(p, "round"),
            f.number_map(p, "metrics", default=True),
        )


@dataclass(slots=True, eq=False)
class QTable(Body):
    """A Q-learner's values and visit counts over (state, action)."""

    KIND: ClassVar[str] = "qtable"
    states: tuple[str, ...]
    actions: tuple[str, ...]
    values: np.ndarray
    visits: np.ndarray
    episodes: int = 0

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {
            "states": list(self.states),
            "actions": list(self.actions),
            "values": _put(arrays, self.values),
            "visits": _put(arrays, self.visits),
            "episodes": int(self.episodes),
        }

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        states = f.labels(p, "states", limits)
        actions = f.labels(p, "actions", limits)
        values = table.take("values", f.get(p, "values"))
        visits = table.take("visits", f.get(p, "visits"))
        shape = (len(states), len(actions))
        if values.shape != shape or visits.shape != shape:
            raise ProtocolError(
                Reason.SHAPE_MISMATCH, f"values {values.shape}, visits {visits.shape}, labels {shape}"
            )
        if values.dtype.kind != "f" or visits.dtype.kind not in "fiu":
            raise ProtocolError(Reason.BAD_DTYPE, f"values {values.dtype}, visits {visits.dtype}")
        return cls(states, actions, values, visits, f.integer(p, "episodes"))


@dataclass(slots=True, eq=False)
class Delta(Body):
    """A weight update against ``base_version``, as named tensors (seed 002)."""

    KIND: ClassVar[str] = "delta"
    model: str
    tensors: Mapping[str, np.ndarray]
    base_version: int
    samples: int
    round: int = 0
    clip_norm: float | None = None
    noise_multiplier: float | None = None

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {
            "model": self.model,
            "tensors": {k: _put(arrays, v) for k, v in self.tensors.items()},
            "base_version": int(self.base_version),
            "samples": int(self.samples),
            "round": int(self.round),
            "clip_norm": self.clip_norm,
            "noise_multiplier": self.noise_multiplier,
        }

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(
            model=f.name(p, "model"),
            tensors=_tensor_map(p, "tensors", table, limits),
            base_version=f.integer(p, "base_version"),
            samples=f.integer(p, "samples"),
            round=f.integer(p, "round"),
            clip_norm=f.opt_number(p, "clip_norm", lo=0.0),
            noise_multiplier=f.opt_number(p, "noise_multiplier", lo=0.0),
        )


@dataclass(slots=True, eq=False)
class Meta(Body):
    """Meta-parameters from a coordinator, versioned; ``target`` is a domain or ``""`` for all."""

    KIND: ClassVar[str] = "meta"
    version: int
    target: str = ""
    params: Mapping[str, float] = field(default_factory=dict)
    labels: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    tensors: Mapping[str, np.ndarray] = field(default_factory=dict)

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {
            "version": int(self.version),
            "target": self.target,
            "params": dict(self.params),
            "labels": {k: list(v) for k, v in self.labels.items()},
            "tensors": {k: _put(arrays, v) for k, v in self.tensors.items()},
        }

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        raw_labels = f.get(p, "labels")
        if type(raw_labels) is not dict or len(raw_labels) > limits.max_map_len:
            raise f.bad("labels", raw_labels)
        labels = {}
        for k in raw_labels:
            if not f.is_name(k):
                raise f.bad("labels", k)
            labels[k] = f.labels(raw_labels, k, limits)
        target = f.text(p, "target", limits, default="")
        return cls(
            version=f.integer(p, "version"),
            target=target,
            params=f.number_map(p, "params"),
            labels=labels,
            tensors=_tensor_map(p, "tensors", table, limits),
        )


@dataclass(slots=True)
class SnapshotRequest(Body):
    """A late joiner asks a peer's ROUTER for the latest state of these domains."""

    KIND: ClassVar[str] = "snapshot_request"
    domains: tuple[str, ...] = ()
    senders: tuple[str, ...] = ()
    """Only the latest messages of these authors (all when empty): how an ``ihave`` is fetched."""

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        out: dict[str, Any] = {"domains": list(self.domains)}
        if self.senders:
            out["senders"] = list(self.senders)
        return out

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(
            domains=f.names(p, "domains", limits, default=True),
            senders=f.names(p, "senders", limits, default=True),
        )


@dataclass(slots=True)
class IHave(Body):
    """Lazy relay of a large message: "I hold ``origin``'s message ``seq``; fetch it if you lack it".

    Published with hops 0 on the message's domain in place of relaying its
    bytes; ``hops`` is what the fetched message may still travel.
    """

    KIND: ClassVar[str] = "ihave"
    origin: str
    seq: int
    kind: str
    hops: int

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {"origin": self.origin, "seq": int(self.seq), "kind": self.kind, "hops": int(self.hops)}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(
            origin=f.name(p, "origin"),
            seq=f.integer(p, "seq"),
            kind=f.name(p, "kind"),
            hops=f.integer(p, "hops", hi=limits.max_hops),
        )


@dataclass(slots=True)
class Snapshot(Body):
    """Ends a snapshot reply: how many messages came before it, and the newest
    sequence number per sender they cover, so the joiner can discard older live ones."""

    KIND: ClassVar[str] = "snapshot"
    count: int
    covered: Mapping[str, int] = field(default_factory=dict)

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {"count": int(self.count), "covered": dict(self.covered)}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(
            count=f.integer(p, "count"),
            covered=f.number_map(p, "covered", integers=True, lo=0),
        )


@dataclass(slots=True)
class Prompt(Body):
    """A prompt template that worked for a task, with the sender's own (untrusted) score."""

    KIND: ClassVar[str] = "prompt"
    task: str
    template: str
    score: float
    samples: int
    strategy: str = ""
    generation: int = 0

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {
            "task": self.task,
            "template": self.template,
            "score": float(self.score),
            "samples": int(self.samples),
            "strategy": self.strategy,
            "generation": int(self.generation),
        }

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(
            task=f.name(p, "task"),
            template=f.text(p, "template", limits),
            score=f.number(p, "score"),
            samples=f.integer(p, "samples"),
            strategy=f.text(p, "strategy", limits, default=""),
            generation=f.integer(p, "generation"),
        )


@dataclass(slots=True)
class StatusRequest(Body):
    """Asks a node's ROUTER for its status."""

    KIND: ClassVar[str] = "status_request"

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls()


@dataclass(slots=True)
class Status(Body):
    """A node's status report: plain data for people and tools, bounded in depth."""

    KIND: ClassVar[str] = "status"
    report: Mapping[str, Any]

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {"report": dict(self.report)}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        report = f.plain(f.get(p, "report"), "report", limits)
        if type(report) is not dict:
            raise f.bad("report", report)
        return cls(report=report)


@dataclass(slots=True)
class Graft(Body):
    """Asks a peer to add me to its mesh for the envelope's domain."""

    KIND: ClassVar[str] = "graft"

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls()


@dataclass(slots=True)
class Prune(Body):
    """Removes a mesh link; the pruned peer waits ``backoff`` seconds before grafting
    again, and may try the ``peers`` offered instead (peer exchange)."""

    KIND: ClassVar[str] = "prune"
    backoff: float = 60.0
    peers: tuple[PeerAddr, ...] = ()

    def pack(self, arrays: list[np.ndarray]) -> dict[str, Any]:
        return {"backoff": float(self.backoff), "peers": [x.pack() for x in self.peers]}

    @classmethod
    def unpack(cls, p: Mapping[str, Any], table: ArrayTable, limits: Limits) -> Self:
        return cls(backoff=f.number(p, "backoff", lo=0.0), peers=_peers(p, "peers", limits))


#: Every kind by its wire name.
KINDS: Mapping[str, type[Body]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Heartbeat,
        Bye,
        Insight,
        QTable,
        Delta,
        Meta,
        SnapshotRequest,
        Snapshot,
        IHave,
        Prompt,
        StatusRequest,
        Status,
        Graft,
        Prune,
    )
}

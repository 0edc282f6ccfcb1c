"""Peer liveness as a pure state machine with hysteresis, and the member table gossiped.

A peer is ALIVE while its heartbeats arrive, SUSPECT after ``suspect_after``
seconds of silence, DEAD after ``dead_after``. Only peers a node is linked to
(``watched``, its mesh neighbours, whose hops-0 heartbeats reach it) are judged by
silence; the others take the state the member gossip tells (``told``), as in
memberlist and Serf, so no heartbeat need cross the network. Coming back from SUSPECT or DEAD
takes ``rejoin_heartbeats`` consecutive heartbeats (each within
``heartbeat_interval * slack`` of the previous): one stray heartbeat from a
flaky peer does not flip it back and forth. A graceful ``bye`` forgets the
peer at once. Time is always passed in; nothing here reads a clock.

:class:`MemberTable` holds what is gossiped: per member its incarnation and state, merged
by memberlist's rules (a higher incarnation wins; at equal ones suspect beats alive and dead
beats both; only a member raises its own incarnation, which is how it refutes a suspicion), a
digest of the (member, incarnation) pairs it holds, and a bounded queue of updates to
piggyback on heartbeats, each sent a few times ``log10(N)`` and then dropped.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Collection
from dataclasses import dataclass, replace
from enum import StrEnum

__all__ = [
    "LAN",
    "LOCAL",
    "MemberRow",
    "MemberTable",
    "Membership",
    "MembershipConfig",
    "PeerState",
    "Transition",
]


class PeerState(StrEnum):
    ALIVE = "alive"
    SUSPECT = "suspect"
    DEAD = "dead"


@dataclass(frozen=True, slots=True, kw_only=True)
class MembershipConfig:
    heartbeat_interval: float = 1.0
    suspect_after: float = 5.0
    dead_after: float = 30.0
    rejoin_heartbeats: int = 3
    slack: float = 2.5
    max_peers: int = 4096

    def __post_init__(self) -> None:
        if not 0 < self.heartbeat_interval < self.suspect_after < self.dead_after:
            raise ValueError("need 0 < heartbeat_interval < suspect_after < dead_after")
        if self.rejoin_heartbeats < 1 or self.max_peers < 1:
            raise ValueError("rejoin_heartbeats and max_peers must be at least 1")


LAN = MembershipConfig()
LOCAL = MembershipConfig(heartbeat_interval=0.2, suspect_after=1.0, dead_after=3.0, rejoin_heartbeats=2)


@dataclass(frozen=True, slots=True)
class Transition:
    """``peer`` went from ``old`` (None: newly seen) to ``new`` at time ``at``."""

    peer: str
    old: PeerState | None
    new: PeerState
    at: float


@dataclass(slots=True)
class _Peer:
    state: PeerState
    last_seen: float
    streak: int = 0
    changed_at: float = 0.0


class Membership:
    """Liveness of every known peer. Pure: feed it observations and time."""

    def __init__(self, config: MembershipConfig = LAN) -> None:
        self.config = config
        self._peers: dict[str, _Peer] = {}
        self._watched: set[str] | None = None

    def observe(self, peer: str, now: float) -> Transition | None:
        """A heartbeat (or hello) from ``peer`` at ``now``."""
        cfg = self.config
        rec = self._peers.get(peer)
        if rec is None:
            self._make_room()
            self._peers[peer] = _Peer(PeerState.ALIVE, now, cfg.rejoin_heartbeats, now)
            return Transition(peer, None, PeerState.ALIVE, now)
        consecutive = now - rec.last_seen <= cfg.heartbeat_interval * cfg.slack
        rec.last_seen = now
        if rec.state is PeerState.ALIVE:
            return None
        rec.streak = rec.streak + 1 if consecutive else 1
        if rec.streak >= cfg.rejoin_heartbeats:
            old, rec.state, rec.changed_at = rec.state, PeerState.ALIVE, now
            return Transition(peer, old, PeerState.ALIVE, now)
        return None

    def forgive(self, stalled: float) -> None:
        """This node itself stood still for ``stalled`` seconds (paused, swapped out, a long GC):
        peers are not to blame for the silence, so their clocks move on by as much.

        Without this, a node resumed after a pause finds every peer suspect at once and drops
        their links while their messages are still queued, as memberlist's local health
        awareness also avoids.
        """
        for rec in self._peers.values():
            rec.last_seen += stalled

    def bye(self, peer: str, now: float) -> Transition | None:
        """A graceful leave: forget the peer now; if it comes back it is new."""
        rec = self._peers.pop(peer, None)
        if rec is None:
            return None
        return Transition(peer, rec.state, PeerState.DEAD, now)

    def told(self, peer: str, state: PeerState, now: float) -> Transition | None:
        """The member gossip says ``peer`` is in ``state``: taken for a peer not watched.

        A watched peer (a neighbour) is judged by what this node hears of it, not by hearsay.
        A peer told dead that this node does not know is not added.
        """
        if self._watched is not None and peer in self._watched:
            return None
        rec = self._peers.get(peer)
        if rec is None:
            if state is PeerState.DEAD:
                return None
            self._make_room()
            self._peers[peer] = _Peer(state, now, 0, now)
            return Transition(peer, None, state, now)
        if state is PeerState.ALIVE:
            rec.last_seen = now
        if state is rec.state:
            return None
        old, rec.state, rec.changed_at, rec.streak = rec.state, state, now, 0
        return Transition(peer, old, state, now)

    def tick(self, now: float, watched: Collection[str] | None = None) -> list[Transition]:
        """Advance time: silent peers become SUSPECT, then DEAD.

        With ``watched`` given, only those peers are judged by silence (the others by
        :meth:`told`); a peer newly watched has its silence counted from ``now``.
        """
        cfg = self.config
        out = []
        if watched is not None:
            fresh = set(watched) - (self._watched or set())
            for peer in fresh:
                rec = self._peers.get(peer)
                if rec is not None and rec.state is PeerState.ALIVE:
                    rec.last_seen = max(rec.last_seen, now)
            self._watched = set(watched)
        judged = None if watched is None else self._watched
        for peer, rec in self._peers.items():
            if judged is not None and peer not in judged:
                continue
            silent = now - rec.last_seen
            new = rec.state
            if silent >= cfg.dead_after:
                new = PeerState.DEAD
            elif silent >= cfg.suspect_after and rec.state is PeerState.ALIVE:
                new = PeerState.SUSPECT
            if new is not rec.state:
                out.append(Transition(peer, rec.state, new, now))
                rec.state, rec.changed_at, rec.streak = new, now, 0
        return out

    def absent(self, now: float) -> list[tuple[str, float]]:
        """Peers not alive, with how long they have been in their state: candidates for a probe."""
        return [(p, now - r.changed_at) for p, r in self._peers.items() if r.state is not PeerState.ALIVE]

    def forget(self, peer: str) -> None:
        """Drop a peer given up on; if it comes back it is new."""
        self._peers.pop(peer, None)

    def state(self, peer: str) -> PeerState | None:
        rec = self._peers.get(peer)
        return None if rec is None else rec.state

    def alive(self) -> list[str]:
        return [p for p, r in self._peers.items() if r.state is PeerState.ALIVE]

    def snapshot(self) -> dict[str, PeerState]:
        return {p: r.state for p, r in self._peers.items()}

    def _make_room(self) -> None:
        if len(self._peers) < self.config.max_peers:
            return
        order = {PeerState.DEAD: 0, PeerState.SUSPECT: 1, PeerState.ALIVE: 2}
        victim = min(self._peers, key=lambda p: (order[self._peers[p].state], self._peers[p].last_seen))
        del self._peers[victim]


_RANK = {PeerState.ALIVE: 0, PeerState.SUSPECT: 1, PeerState.DEAD: 2}
_MASK = 2**63 - 1


@dataclass(frozen=True, slots=True)
class MemberRow:
    """One member as gossiped: where it is, its incarnation, its state, its domains."""

    id: str
    pub: str
    router: str
    inc: int
    state: PeerState
    domains: tuple[str, ...] = ()


def _row_hash(peer: str, inc: int) -> int:
    digest = hashlib.blake2b(f"{peer}\0{inc}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") & _MASK


class MemberTable:
    """The member table one node gossips: merge rules, digest, and the news queue. Pure.

    The digest is the XOR of a hash of (id, incarnation) over the rows not dead, this node's
    own included: two nodes holding the same members at the same incarnations have the same
    digest whatever order they learned them in, so a neighbour whose digest differs is worth
    a pull of its whole table, and one whose digest is equal is not.
    """

    def __init__(self, me: MemberRow, *, retransmit_mult: int = 3, max_rows: int = 16384) -> None:
        self.retransmit_mult = retransmit_mult
        self.max_rows = max_rows
        self.rows: dict[str, MemberRow] = {}
        self.dropped = 0  # rows refused for want of room, and news dropped from a full queue
        self._digest = 0
        self._queue: dict[str, tuple[MemberRow, int]] = {}  # id -> (row, times sent)
        self._me = me.id
        self._put(replace(me, state=PeerState.ALIVE))
        self._enqueue(self.rows[me.id])

    @property
    def me(self) -> MemberRow:
        return self.rows[self._me]

    def digest(self) -> int:
        return self._digest

    def size(self) -> int:
        """Rows not dead, this node's own included."""
        return sum(1 for r in self.rows.values() if r.state is not PeerState.DEAD)

    def update_me(self, pub: str, router: str, domains: tuple[str, ...]) -> bool:
        """This node's own address or domains, at a new incarnation if they changed."""
        me = self.me
        if (me.pub, me.router, me.domains) == (pub, router, domains):
            return False
        self._put(MemberRow(me.id, pub, router, me.inc + 1, PeerState.ALIVE, domains))
        self._enqueue(self.me)
        return True

    def merge(self, row: MemberRow) -> MemberRow | None:
        """A row from a peer; the row now held if it changed anything, else None.

        A row about this node itself that suspects or buries it at its incarnation or later is
        refuted: the incarnation goes past it and the news queue carries this node as alive.
        """
        if row.id == self._me:
            me = self.me
            if row.inc > me.inc or (row.inc == me.inc and row.state is not PeerState.ALIVE):
                self._put(replace(me, inc=row.inc + 1))
                self._enqueue(self.me)
            return None
        held = self.rows.get(row.id)
        if held is None:
            if row.state is PeerState.DEAD:
                return None
            if len(self.rows) >= self.max_rows and not self._evict():
                self.dropped += 1
                return None
        elif not (row.inc > held.inc or (row.inc == held.inc and _RANK[row.state] > _RANK[held.state])):
            return None
        self._put(row)
        self._enqueue(row)
        return row

    def judge(self, peer: str, state: PeerState) -> MemberRow | None:
        """This node's own finding about a neighbour (by silence, or by its heartbeats again).

        Suspect and dead are gossiped at the incarnation held, for the peer to refute if it is
        alive. Alive is held here only: the peer's next incarnation is what tells the others.
        """
        held = self.rows.get(peer)
        if held is None or held.state is state:
            return None
        row = replace(held, state=state)
        self._put(row)
        if state is not PeerState.ALIVE:
            self._enqueue(row)
        return row

    def forget(self, peer: str) -> None:
        if peer != self._me:
            self._drop(peer)
            self._queue.pop(peer, None)

    def news(self, limit: int) -> list[MemberRow]:
        """Up to ``limit`` queued updates, the least sent first; each leaves after a few sends."""
        if not self._queue:
            return []
        sends = self.retransmit_mult * max(1, math.ceil(math.log10(len(self.rows) + 1)))
        picked = sorted(self._queue.items(), key=lambda item: item[1][1])[:limit]
        out = []
        for peer, (row, sent) in picked:
            out.append(row)
            if sent + 1 >= sends:
                del self._queue[peer]
            else:
                self._queue[peer] = (row, sent + 1)
        return out

    def pending(self) -> int:
        return len(self._queue)

    def table(self, limit: int) -> list[MemberRow]:
        """The rows to send in a pull: this node first, then the others (dead ones last)."""
        others = sorted((r for r in self.rows.values() if r.id != self._me), key=lambda r: _RANK[r.state])
        return [self.me, *others][:limit]

    # -- internals ------------------------------------------------------------------

    def _put(self, row: MemberRow) -> None:
        self._drop(row.id)
        self.rows[row.id] = row
        if row.state is not PeerState.DEAD:
            self._digest ^= _row_hash(row.id, row.inc)

    def _drop(self, peer: str) -> None:
        old = self.rows.pop(peer, None)
        if old is not None and old.state is not PeerState.DEAD:
            self._digest ^= _row_hash(old.id, old.inc)

    def _enqueue(self, row: MemberRow) -> None:
        if row.id not in self._queue and len(self._queue) >= self.max_rows:
            self.dropped += 1
            return
        self._queue[row.id] = (row, 0)

    def _evict(self) -> bool:
        dead = next((p for p, r in self.rows.items() if r.state is PeerState.DEAD), None)
        if dead is None:
            return False
        self.forget(dead)
        return True

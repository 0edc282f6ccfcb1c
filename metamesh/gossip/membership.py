"""Peer liveness as a pure state machine with hysteresis.

A peer is ALIVE while its heartbeats arrive, SUSPECT after ``suspect_after``
seconds of silence, DEAD after ``dead_after``. Coming back from SUSPECT or DEAD
takes ``rejoin_heartbeats`` consecutive heartbeats (each within
``heartbeat_interval * slack`` of the previous): one stray heartbeat from a
flaky peer does not flip it back and forth. A graceful ``bye`` forgets the
peer at once. Time is always passed in; nothing here reads a clock.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["LAN", "LOCAL", "Membership", "MembershipConfig", "PeerState", "Transition"]


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

    def tick(self, now: float) -> list[Transition]:
        """Advance time: silent peers become SUSPECT, then DEAD."""
        cfg = self.config
        out = []
        for peer, rec in self._peers.items():
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

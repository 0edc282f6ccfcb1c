"""The mesh of one domain: how many peers a node keeps links to, as gossipsub does.

A node keeps between ``d_lo`` and ``d_hi`` mesh peers per domain, aiming at
``d``: below ``d_lo`` it grafts eligible peers up to ``d``; above ``d_hi`` it
prunes back to ``d``; in between it does nothing (a band, so the mesh does not
churn). A pruned peer is not grafted again before its backoff ends. Only the
candidates given (alive peers of the domain) are eligible for a graft; members
are dropped only once they are not even among those to ``keep`` (alive or
suspect: a peer merely late with its heartbeats keeps its link, which is what
would carry the heartbeat that clears it). Peers named ``preferred`` (those
that have answered this node) are grafted first and pruned last, as
gossipsub's scores favour peers that behave: otherwise names from forged
messages, at addresses nobody serves, could take a mesh's every slot. Among
them, peers already ``linked`` (in another of the node's meshes) go first: a link
carries every topic both ends subscribe to, and every link carries the
heartbeats, so meshes that share links keep a node's neighbours, and its idle
traffic, near one mesh's degree instead of the sum of its meshes'. Pure:
time and randomness are passed in.
"""

from __future__ import annotations

import random
from collections.abc import Collection
from dataclasses import dataclass, field

__all__ = ["Mesh", "MeshActions", "MeshConfig"]


@dataclass(frozen=True, slots=True, kw_only=True)
class MeshConfig:
    d: int = 6
    d_lo: int = 4
    d_hi: int = 8
    prune_backoff: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.d_lo <= self.d <= self.d_hi:
            raise ValueError(f"need 0 < d_lo <= d <= d_hi, got {self.d_lo}, {self.d}, {self.d_hi}")


@dataclass(frozen=True, slots=True)
class MeshActions:
    graft: list[str] = field(default_factory=list)
    prune: list[str] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)


class Mesh:
    def __init__(self, config: MeshConfig = MeshConfig()) -> None:
        self.config = config
        self.members: set[str] = set()
        self._backoff: dict[str, float] = {}

    def in_backoff(self, peer: str, now: float) -> bool:
        until = self._backoff.get(peer)
        if until is None:
            return False
        if now >= until:
            del self._backoff[peer]
            return False
        return True

    def heartbeat(
        self,
        now: float,
        candidates: Collection[str],
        rng: random.Random,
        keep: Collection[str] | None = None,
        preferred: Collection[str] = (),
        *,
        linked: Collection[str] = (),
        carried: int = 0,
        own: int = 0,
    ) -> MeshActions:
        """Graft from ``candidates``; drop members not in ``keep`` (default: the candidates).

        Grafts take ``preferred`` peers first, and of those the ``linked`` ones first.
        ``carried`` links outside the mesh that carry its topic anyway count towards its degree,
        but the mesh keeps at least ``own`` members of its own (random links join what the
        other meshes might leave apart).
        """
        cfg = self.config
        dropped = sorted(self.members - set(candidates if keep is None else keep))
        self.members -= set(dropped)
        graft: list[str] = []
        prune: list[str] = []
        first = set(preferred)
        if len(self.members) + carried < cfg.d_lo or len(self.members) < own:
            eligible = sorted(p for p in candidates if p not in self.members and not self.in_backoff(p, now))
            wanted = max(cfg.d - len(self.members) - carried, own - len(self.members))
            ahead = first & set(linked) if not own else first
            graft = _pick([p for p in eligible if p in ahead], wanted, set(), rng)
            graft += _pick([p for p in eligible if p not in graft], wanted - len(graft), first, rng)
            self.members.update(graft)
        elif len(self.members) + carried > cfg.d_hi and len(self.members) > own:
            others = set(self.members) - first  # pruned first
            excess = min(len(self.members) - own, len(self.members) + carried - cfg.d)
            prune = _pick(sorted(self.members), excess, others, rng)
            for p in prune:
                self.members.discard(p)
                self._backoff[p] = now + cfg.prune_backoff
        return MeshActions(graft, prune, dropped)

    def on_graft(self, peer: str, now: float) -> bool:
        """A peer asks to join our mesh: yes unless it is in backoff or we are full."""
        if peer in self.members:
            return True
        if self.in_backoff(peer, now) or len(self.members) >= self.config.d_hi:
            return False
        self.members.add(peer)
        return True

    def on_prune(self, peer: str, now: float, backoff: float) -> None:
        self.members.discard(peer)
        self._backoff[peer] = now + max(backoff, 0.0)


def _pick(pool: list[str], n: int, first: set[str], rng: random.Random) -> list[str]:
    """``n`` of ``pool`` at random, those in ``first`` before any other."""
    ahead = [p for p in pool if p in first]
    rest = [p for p in pool if p not in first]
    out = rng.sample(ahead, min(n, len(ahead)))
    return out + rng.sample(rest, min(n - len(out), len(rest)))

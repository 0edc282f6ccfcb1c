"""Per-peer misbehaviour scores and quarantine with hysteresis.

Each rejected, invalid or outlier message charged to a peer adds to its
score; scores decay exponentially (a half-life), so an honest peer that
sent one bad message long ago is not punished forever. Past ``above`` the
peer is quarantined: its messages are neither merged nor relayed. It comes
back only once the score has decayed below ``below`` — a lower threshold, so
a peer hovering near the line does not flap in and out.

Pure logic: time is the ``now`` argument. Peers tracked are bounded; when
full, the lowest-scoring peer that is not quarantined is forgotten, so a flood
of fake sender ids cannot grow memory or free a quarantined peer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

__all__ = ["PeerScores", "ScoreChange"]


@dataclass(frozen=True, slots=True)
class ScoreChange:
    """A peer entered (``quarantined=True``) or left quarantine."""

    peer: str
    quarantined: bool
    score: float


class PeerScores:
    """Decaying misbehaviour scores with a quarantine Schmitt trigger."""

    __slots__ = ("_above", "_below", "_decay", "_max", "_scores", "quarantined")

    def __init__(self, *, above: float, below: float, half_life: float, max_peers: int = 4096) -> None:
        if not 0 <= below < above:
            raise ValueError(f"need 0 <= below < above, got {below} and {above}")
        if not half_life > 0 or max_peers < 1:
            raise ValueError("half_life must be > 0 and max_peers >= 1")
        self._above, self._below = above, below
        self._decay = math.log(2) / half_life
        self._max = max_peers
        self._scores: dict[str, tuple[float, float]] = {}  # peer -> (score, at)
        self.quarantined: set[str] = set()

    def score(self, peer: str, now: float) -> float:
        value, at = self._scores.get(peer, (0.0, now))
        return value * math.exp(-self._decay * max(now - at, 0.0))

    def charge(self, peer: str, now: float, weight: float = 1.0) -> ScoreChange | None:
        """Add ``weight`` to ``peer``'s score; returns the change if it was just quarantined."""
        value = self.score(peer, now) + weight
        if peer not in self._scores and len(self._scores) >= self._max:
            self._evict(now)
        self._scores[peer] = (value, now)
        if peer not in self.quarantined and value > self._above:
            self.quarantined.add(peer)
            return ScoreChange(peer, True, value)
        return None

    def release(self, peer: str, now: float) -> ScoreChange | None:
        """Let ``peer`` back if its score has decayed below the lower threshold."""
        if peer not in self.quarantined:
            return None
        value = self.score(peer, now)
        if value >= self._below:
            return None
        self.quarantined.discard(peer)
        return ScoreChange(peer, False, value)

    def tick(self, now: float) -> list[ScoreChange]:
        """Release every quarantined peer whose score has decayed enough; forget settled scores."""
        changes = [c for p in sorted(self.quarantined) if (c := self.release(p, now)) is not None]
        for peer in [p for p in self._scores if p not in self.quarantined and self.score(p, now) < 1e-3]:
            del self._scores[peer]
        return changes

    def report(self, now: float) -> dict[str, float]:
        return {p: round(self.score(p, now), 3) for p in sorted(self._scores)}

    def _evict(self, now: float) -> None:
        free = [p for p in self._scores if p not in self.quarantined]
        if free:
            del self._scores[min(free, key=lambda p: self.score(p, now))]
        else:  # every tracked peer is quarantined: drop the one closest to release
            victim = min(self._scores, key=lambda p: self.score(p, now))
            del self._scores[victim]
            self.quarantined.discard(victim)

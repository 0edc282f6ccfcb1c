"""How much a node trusts each peer: misbehaviour scores, quarantine, weights from drift reports.

PROTOCOL.md sections 8.3 and 8.4. The learner hears every change through ``weigh_peer``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping

from metamesh.gossip.score import PeerScores, ScoreChange
from metamesh.node.core import Core
from metamesh.node.learner import Learner

__all__ = ["DRIFT_ZERO_WEIGHT", "HEALTH_METRICS", "Trust"]

log = logging.getLogger(__name__)

#: Insight metrics that are a peer's own monitor report (PROTOCOL.md, insight).
HEALTH_METRICS = frozenset({"drift", "drifting", "misaligned"})
#: A peer reporting this much drift (Jensen-Shannon, 0..1) gets no weight in merges.
DRIFT_ZERO_WEIGHT = 0.4


class Trust:
    """Scores per peer (charged by :meth:`blame`) and merge weights (from :meth:`peer_health`)."""

    def __init__(self, core: Core, learner: Learner | None) -> None:
        cfg = core.config
        self._core = core
        self._learner = learner
        self.scores = PeerScores(
            above=cfg.quarantine_above, below=cfg.quarantine_below, half_life=cfg.score_half_life
        )
        self.peer_weights: dict[str, float] = {}

    def quarantined(self, peer: str) -> bool:
        return peer in self.scores.quarantined

    def blame(self, peer: str, reason: str) -> None:
        """Charge ``peer`` one misbehaviour; past the threshold it is quarantined."""
        change = self.scores.charge(peer, time.monotonic())
        if change is not None:
            self.changed(change, reason)

    def tick(self, now: float) -> None:
        """Let scores decay; release peers that have behaved long enough."""
        for change in self.scores.tick(now):
            self.changed(change)

    def changed(self, change: ScoreChange, reason: str = "") -> None:
        state = "quarantined" if change.quarantined else "released"
        if self._learner is not None:  # what a quarantined peer said before no longer counts either
            self._learner.weigh_peer(
                change.peer, 0.0 if change.quarantined else self.peer_weights.get(change.peer, 1.0)
            )
        self._core.events.write(
            "quarantine", peer=change.peer, state=state, score=round(change.score, 3), reason=reason
        )
        log.warning(
            "peer %s %s (score %.1f%s)", change.peer, state, change.score, f", {reason}" if reason else ""
        )

    def peer_health(self, peer: str, metrics: Mapping[str, float]) -> None:
        """A peer's own monitor figures: trust it less as it drifts; one in alert is charged.

        Its weight in merges falls linearly from 1 (no drift) to 0 at a drift of
        ``DRIFT_ZERO_WEIGHT``; each insight reporting an alert (drifting or misaligned)
        charges its score once, so a peer that stays in alert is quarantined.
        """
        drift = metrics.get("drift")
        alarmed = metrics.get("drifting", 0.0) >= 0.5 or metrics.get("misaligned", 0.0) >= 0.5
        weight = 1.0 if drift is None else min(max(1.0 - drift / DRIFT_ZERO_WEIGHT, 0.0), 1.0)
        if alarmed:
            weight = min(weight, 0.5)
        if weight != self.peer_weights.get(peer, 1.0):
            self._core.events.write(
                "peer_weight", peer=peer, weight=round(weight, 3), drift=drift, alert=alarmed
            )
        self.peer_weights[peer] = weight
        if self._learner is not None:
            self._learner.weigh_peer(peer, weight)
        if alarmed:
            self.blame(peer, "drift")

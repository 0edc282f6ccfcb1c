"""A node whose behaviour changes mid-run: its monitor flags it, its peers trust it less, then
quarantine it. Real node processes on loopback.

Four prompt-learning nodes federate; from episode 1500 one of them (``drifter``) picks its
strategies at random, as a node whose policy was reset or corrupted would. Its monitor
compares each 100-episode cycle with the reference it formed after warming up.
"""

from __future__ import annotations

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

DRIFT_AT = 1500
LEARNER = ("--learner", "prompts", "--pace", "0.005", "--eval-every", "0", "--quarantine-above", "3")


def monitor_events(node: NodeProcess) -> list[dict[str, object]]:
    return [e for e in node.events() if e["event"] == "monitor"]


def test_a_drifting_peer_is_flagged_down_weighted_and_quarantined(cluster: Cluster) -> None:
    first = cluster.start("n0", *LEARNER)
    honest = [first] + [
        cluster.start(f"n{i}", *LEARNER, "--seed", first.router, "--seed-value", str(i)) for i in (1, 2)
    ]
    drifter = cluster.start("drifter", *LEARNER, "--seed", first.router, "--seed-value", "3",
                            "--drift-at", str(DRIFT_AT))  # fmt: skip

    def flagged() -> list[dict[str, object]]:
        return [e for e in monitor_events(drifter) if "drift" in e["changes"]]  # type: ignore[operator]

    wait_until(flagged, 60, "the drifter's own monitor to flag its change")
    flag = flagged()[0]
    episodes = flag["episodes"]
    assert isinstance(episodes, int) and DRIFT_AT < episodes <= DRIFT_AT + 3 * 100, flag

    def quarantined_by(node: NodeProcess) -> bool:
        return any(e["event"] == "quarantine" and e["peer"] == "drifter" and e["state"] == "quarantined"
                   for e in node.events())  # fmt: skip

    wait_until(lambda: all(quarantined_by(n) for n in honest), 40, "every peer to quarantine the drifter")
    for node in honest:
        events = node.events()
        weights = [e for e in events if e["event"] == "peer_weight" and e["peer"] == "drifter"]
        assert weights and min(float(e["weight"]) for e in weights) <= 0.5, node.id  # type: ignore[arg-type]
        # Honest nodes were never flagged, by themselves or by anyone.
        assert not [e for e in monitor_events(node) if e["changes"]], node.id
        assert not [e for e in events if e["event"] == "quarantine" and e["peer"] != "drifter"], node.id
        report = node.status()
        assert report is not None and report["quarantined"] == ["drifter"]

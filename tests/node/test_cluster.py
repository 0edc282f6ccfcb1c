"""Multi-process tests of the node runtime on 127.0.0.1: real processes, random ports."""

from __future__ import annotations

import random
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = pytest.mark.slow

# The local profile: heartbeat 0.2 s, suspect after 1 s, dead after 3 s.
SUSPECT_AFTER, DEAD_AFTER = 1.0, 3.0


def _full_membership(nodes: list, n: int) -> bool:
    for node in nodes:
        states = node.peer_states()
        if sum(1 for s in states.values() if s == "alive") < n - 1:
            return False
    return True


@pytest.mark.timeout(120)
def test_six_nodes_with_one_seed_each_reach_full_membership_and_see_a_crash(cluster: Cluster) -> None:
    nodes = [cluster.start("n0")]
    for i in range(1, 6):  # a chain: each node knows only the previous one
        nodes.append(cluster.start(f"n{i}", "--seed", nodes[-1].router))
    wait_until(lambda: _full_membership(nodes, 6), 30, "all 6 nodes to see 5 alive peers")

    victim = nodes[2]
    seq_before = victim.status()["seq"]  # type: ignore[index]
    victim.kill()
    killed_at = time.monotonic()
    others = [n for n in nodes if n is not victim]
    wait_until(lambda: all(o.peer_states().get("n2") in ("suspect", "dead") for o in others), 10, "suspect")
    suspect_seen = time.monotonic() - killed_at
    wait_until(lambda: all(o.peer_states().get("n2") == "dead" for o in others), 15, "dead")
    dead_seen = time.monotonic() - killed_at
    assert SUSPECT_AFTER * 0.5 <= suspect_seen <= SUSPECT_AFTER + 5
    assert DEAD_AFTER * 0.8 <= dead_seen <= DEAD_AFTER + 8

    # Restart from the same directory: same id, sequence numbers never reused, alive again.
    restarted = victim.start()
    assert restarted.id == "n2"
    assert restarted.status()["seq"] > seq_before  # type: ignore[index]
    wait_until(lambda: all(o.peer_states().get("n2") == "alive" for o in others), 20, "n2 alive again")
    events = [e for e in restarted.events() if e["event"] == "start"]
    assert len(events) == 2 and events[1]["restored"] is True
    assert events[1]["seq"] > seq_before


@pytest.mark.timeout(60)
def test_graceful_stop_says_bye_and_checkpoints(cluster: Cluster) -> None:
    a = cluster.start("a")
    b = cluster.start("b", "--seed", a.router)
    wait_until(lambda: a.peer_states().get("b") == "alive", 15, "a to see b")
    assert b.stop() == 0
    # bye removes b at once: far sooner than the dead timeout
    wait_until(lambda: "b" not in {p for p, s in a.peer_states().items() if s == "alive"}, DEAD_AFTER, "bye")
    kinds = [e["event"] for e in b.events()]
    assert kinds[-2:] == ["checkpoint", "stop"]


@pytest.mark.timeout(90)
def test_late_joiner_gets_the_snapshot(cluster: Cluster, tmp_path: Path) -> None:
    a = cluster.start("a", "--domain", "math")
    b = cluster.start("b", "--domain", "math", "--seed", a.router)
    publisher = subprocess.Popen(
        [sys.executable, "-m", "tests.publisher", str(tmp_path / "p"), a.router, "math"],
        stdout=subprocess.PIPE,
    )
    try:
        assert publisher.stdout is not None
        assert publisher.stdout.readline().strip() == b"published"

        def held(node: NodeProcess) -> dict[str, int]:
            report = node.status()
            return (
                {} if report is None else {k: v for k, v in report["state"].items() if k.startswith("pub/")}
            )

        wait_until(lambda: len(held(a)) == 2 and len(held(b)) == 2, 20, "a and b to hold pub's state")
    finally:
        publisher.terminate()
        publisher.wait(10)
        if publisher.stdout is not None:
            publisher.stdout.close()
    # The publisher is gone: whatever the late node gets, it gets from a snapshot.
    late = cluster.start("late", "--domain", "math", "--seed", b.router)
    wait_until(lambda: held(late) == held(a) == held(b), 20, "the late node to hold the same state")
    snapshots = [e for e in late.events() if e["event"] == "snapshot"]
    assert snapshots and snapshots[0]["applied"] >= 2


@pytest.mark.timeout(90)
def test_curve_admits_allowlisted_keys_only(cluster: Cluster, tmp_path: Path) -> None:
    from metamesh.gossip.keys import generate_keys

    keys = {}
    for name in ("a", "b", "outsider"):
        keys[name] = tmp_path / f"keys-{name}"
        generate_keys(keys[name])
    for trusting, trusted in (("a", "b"), ("b", "a"), ("outsider", "a"), ("outsider", "b")):
        (keys[trusting] / "authorized" / f"{trusted}.key").write_bytes(
            (keys[trusted] / "node.key").read_bytes()
        )
    a = cluster.start("a", "--keys", str(keys["a"]))
    b = cluster.start("b", "--keys", str(keys["b"]), "--seed", f"a@{a.router}")
    outsider = cluster.start("outsider", "--keys", str(keys["outsider"]), "--seed", f"a@{a.router}")
    a.status_keys, b.status_keys = keys["b"], keys["a"]
    wait_until(
        lambda: a.peer_states().get("b") == "alive" and b.peer_states().get("a") == "alive",
        20,
        "the allowlisted pair to see each other",
    )
    # The outsider trusts a and b, but they do not trust it: it can neither receive nor publish.
    time_limit = time.monotonic() + 3.0  # many heartbeats (0.2 s) would have arrived by now
    wait_until(lambda: time.monotonic() > time_limit, 5, "heartbeat time to pass")
    assert "outsider" not in a.peer_states() and "outsider" not in b.peer_states()
    events = outsider.events()
    assert not [e for e in events if e["event"] == "peer" and e.get("new") == "alive"]
    assert not [e for e in events if e["event"] == "connect"]
    assert not [e for e in a.events() + b.events() if e.get("peer") == "outsider"]


@pytest.mark.timeout(120)
def test_kill_9_loses_nothing_a_peer_has_seen(cluster: Cluster) -> None:
    learner = ["--learner", "prompts", "--pace", "0.01", "--eval-every", "0"]
    a = cluster.start("a", *learner)
    b = cluster.start("b", *learner, "--seed", a.router, "--random-seed", "1")
    wait_until(lambda: a.peer_states().get("b") == "alive", 15, "a to see b")
    rng = random.Random(5)
    for round_ in range(3):
        # Kill at a random moment while b is learning and publishing.
        start = b.status()["learner"]["episodes"]  # type: ignore[index]
        target = start + rng.randint(20, 120)

        def learned(t: int = target) -> bool:
            return bool((b.status() or {}).get("learner", {}).get("episodes", 0) >= t)

        wait_until(learned, 30, "learning")
        seq_before = b.status()["seq"]  # type: ignore[index]
        b.kill()
        persisted = [e for e in b.events() if e["event"] == "checkpoint"]
        published = max(e["episodes"] for e in persisted)
        b.start()
        after = b.status()
        assert after is not None
        assert after["learner"]["episodes"] >= published, f"round {round_}: learned state went backwards"
        assert after["seq"] > seq_before, f"round {round_}: sequence number reused"
        wait_until(lambda: a.peer_states().get("b") == "alive", 20, "b alive again")
    # b's tables keep reaching a after the restarts, and a never had to drop one as a replay.
    report = a.status()
    assert report is not None and report["learner"]["peer_rows"] > 0

"""A node that joins its domain late starts from the domain's model: real processes on loopback."""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(180)]

EXPERTS = ("--learner", "experts", "--domain", "medical", "--pace", "0.1")


def losses(node: NodeProcess) -> list[float]:
    return [float(e["heldout_loss"]) for e in node.events() if e["event"] == "round"]


def done(node: NodeProcess) -> bool:
    return any(e["event"] == "done" for e in node.events())


def test_a_late_joiner_catches_up_in_fewer_rounds_than_a_fresh_isolated_node(cluster: Cluster) -> None:
    first = cluster.start("v0", *EXPERTS, "--part", "0", "--episodes", "8", "--wait-peers", "2")
    veterans = [first] + [
        cluster.start(
            f"v{i}",
            *EXPERTS,
            "--part",
            str(i),
            "--episodes",
            "8",
            "--wait-peers",
            "2",
            "--seed",
            first.router,
        )
        for i in (1, 2)
    ]
    wait_until(lambda: all(done(v) for v in veterans), 90, "veterans finish 8 rounds")
    # The veterans stay up, done training but still answering snapshot requests.
    joiner = cluster.start("joiner", *EXPERTS, "--part", "3", "--episodes", "4", "--seed", first.router)
    isolated = cluster.start("isolated", *EXPERTS, "--part", "3", "--episodes", "4", "--arm", "local")
    wait_until(lambda: done(joiner) and done(isolated), 60, "joiner and isolated node finish 4 rounds")

    adopted = [e for e in joiner.events() if e["event"] == "adopted"]
    assert adopted and len(adopted[0]["from"]) == 3, joiner.events()
    late, alone = losses(joiner), losses(isolated)
    assert len(late) == len(alone) == 4
    # Rounds to reach the isolated node's final loss: the joiner is there after its first round.
    assert late[0] < alone[-1], (late, alone)
    assert late[0] < 0.6 * alone[0], (late, alone)
    for v in veterans:
        assert v.alive()

"""Prompt evolution in real node processes: evolved prompts beat the static one, and nodes
share what wins and verify what they receive."""

from __future__ import annotations

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(120)]

LEARNER = ("--learner", "evolve", "--pace", "0.01", "--regions", "3")


def done(node: NodeProcess) -> dict[str, object] | None:
    return next((e for e in node.events() if e["event"] == "done"), None)


def test_nodes_evolve_prompts_together(cluster: Cluster) -> None:
    first = cluster.start("e0", *LEARNER, "--part", "0")
    nodes = [first] + [
        cluster.start(f"e{i}", *LEARNER, "--part", str(i), "--random-seed", str(i), "--seed", first.router)
        for i in (1, 2)
    ]
    wait_until(lambda: all(done(n) for n in nodes), 90, "every node to converge")
    adopted = refused = 0
    for node in nodes:
        result = done(node)
        assert result is not None
        static, evolved = result["static"], result["evolved"]
        assert isinstance(static, float) and isinstance(evolved, float)
        assert evolved >= static + 0.15, (node.id, static, evolved)  # held-out questions
        events = node.events()
        adopted += sum(e["event"] == "adopted" for e in events)
        refused += sum(e["event"] == "refused" for e in events)
        # A received prompt is adopted only if it scored better here than the local best.
        for e in events:
            if e["event"] == "adopted":
                assert float(e["after"]) > float(e["before"]), e  # type: ignore[arg-type]
            if e["event"] == "refused":
                assert float(e["after"]) == float(e["before"]), e  # type: ignore[arg-type]
    assert adopted >= 1 and adopted + refused >= 3, (adopted, refused)

"""The coordinator with real node processes on loopback: killed, restarted, and met by late joiners."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow]


def events(node: NodeProcess, name: str) -> list[dict[str, Any]]:
    return [e for e in node.events() if e["event"] == name]


def losses(node: NodeProcess) -> list[float]:
    return [float(e["heldout_loss"]) for e in events(node, "round")]


def coordinator(cluster: Cluster, name: str = "coord", *args: str) -> NodeProcess:
    return cluster.start(name, "--interval", "0.5", *args, command="coordinator")


def meta_versions(nodes: Sequence[NodeProcess]) -> list[int]:
    return [max((int(e["version"]) for e in events(n, "meta")), default=0) for n in nodes]


@pytest.mark.torch
@pytest.mark.timeout(240)
def test_nodes_keep_learning_without_the_coordinator_and_it_resumes_from_disk(cluster: Cluster) -> None:
    pytest.importorskip("torch")
    coord = coordinator(cluster)
    args = ("--learner", "experts", "--regions", "2", "--samples", "512", "--episodes", "80",
            "--pace", "0.3", "--wait-peers", "4", "--seed", coord.router)  # fmt: skip
    nodes = cluster.start_many(
        [
            (f"{d}{p}", (*args, "--domain", d, "--part", str(p)))
            for d in ("medical", "economic")
            for p in (0, 1)
        ]
    )
    wait_until(lambda: min(meta_versions(nodes)) >= 2, 60, "every node to apply a meta of version 2")
    wait_until(lambda: min(len(losses(n)) for n in nodes) >= 5, 60, "every node to train 5 rounds")
    wait_until(lambda: events(coord, "checkpoint"), 10, "the coordinator to checkpoint")
    coord.kill()  # SIGKILL: no bye, no final checkpoint
    at_kill = {n.id: len(losses(n)) for n in nodes}
    version_at_kill = max(meta_versions(nodes))

    # Without it: every node goes on training and merging with its domain peer.
    wait_until(lambda: all(len(losses(n)) >= at_kill[n.id] + 8 for n in nodes), 90, "8 more rounds each")
    # Held-out loss is noisy per node (two nodes per domain, half a domain each): compare means.
    at = [losses(n)[at_kill[n.id] - 1] for n in nodes]
    best_later = [min(losses(n)[at_kill[n.id] : at_kill[n.id] + 8]) for n in nodes]
    assert sum(best_later) < sum(at), (at, best_later)
    for n in nodes:
        merged = [e["merged"] for e in events(n, "round")][at_kill[n.id] :]
        assert sum(merged) >= 6, (n.id, merged)

    # Restarted on the same home: it restores its memory and broadcasts a higher version.
    coord.start()
    restored = wait_until(lambda: events(coord, "restored"), 20, "the coordinator to restore its memory")
    assert restored[0]["insights"] >= 8 and restored[0]["version"] >= 2
    assert set(restored[0]["domains"]) == {"medical", "economic"}
    wait_until(
        lambda: min(meta_versions(nodes)) > max(version_at_kill, restored[0]["version"]),
        60,
        "every node to apply a meta newer than the one before the kill",
    )
    for n in nodes:
        assert n.alive()


@pytest.mark.torch
@pytest.mark.timeout(180)
def test_an_experts_node_joining_late_starts_from_the_coordinators_initial_weights(cluster: Cluster) -> None:
    pytest.importorskip("torch")
    coord = coordinator(cluster)
    common = ("--learner", "experts", "--domain", "medical", "--regions", "2", "--pace", "0.1")
    veterans = [
        cluster.start(f"v{p}", *common, "--part", str(p), "--episodes", "8", "--seed", coord.router)
        for p in (0, 1)
    ]
    wait_until(lambda: all(events(v, "done") for v in veterans), 90, "veterans finish 8 rounds")
    wait_until(lambda: min(meta_versions(veterans)) >= 2, 20, "a meta with the veterans' weights")
    for v in veterans:
        v.stop()
    # Both learn alone (arm local): the only difference is the coordinator's meta on joining.
    joiner = cluster.start("joiner", *common, "--part", "0", "--episodes", "3", "--arm", "local",
                           "--seed", coord.router)  # fmt: skip
    fresh = cluster.start("fresh", *common, "--part", "0", "--episodes", "3", "--arm", "local")
    wait_until(lambda: events(joiner, "done") and events(fresh, "done"), 60, "both finish 3 rounds")
    started = events(joiner, "meta_init")
    assert started and started[0]["loss_after"] < started[0]["loss_before"], joiner.events()
    late, alone = losses(joiner), losses(fresh)
    assert late[0] < 0.6 * alone[0], (late, alone)


@pytest.mark.timeout(180)
def test_a_prompt_learner_joining_late_answers_better_early_with_the_coordinators_priors(
    cluster: Cluster,
) -> None:
    coord = coordinator(cluster)
    common = (
        "--learner",
        "prompts",
        "--llm",
        "sim",
        "--pace",
        "0.01",
        "--domain-enter",
        "0.02",
        "--domain-exit",
        "0.01",
    )
    seed = ("--seed", coord.router)
    veterans = [
        cluster.start(f"v{i}", *common, "--episodes", "150", "--random-seed", str(i), *seed) for i in range(3)
    ]
    wait_until(lambda: all(events(v, "done") for v in veterans), 120, "veterans finish 150 episodes")
    wait_until(lambda: min(meta_versions(veterans)) >= 2, 20, "a meta with the veterans' Q-rows")
    late = ("--arm", "local", "--episodes", "10", "--eval-every", "5", "--random-seed", "7")
    joiner = cluster.start("joiner", *common, *late, "--seed", coord.router)
    fresh = cluster.start("fresh", *common, *late)
    wait_until(lambda: events(joiner, "done") and events(fresh, "done"), 60, "both finish 10 episodes")
    applied = events(joiner, "meta_applied")
    assert applied and len(applied[0]["priors"]) >= 4, applied
    first = {n.id: float(events(n, "eval")[0]["accuracy"]) for n in (joiner, fresh)}
    # The fresh node answers the same 0.667 every run; the joiner's priors come from veterans
    # that share Q-rows over gossip, so they vary with timing: measured 0.79-0.88 over 11 runs
    # (4 of them beside three busy processes, one a CI run). 0.08 is ten of 120 questions.
    assert first["joiner"] >= first["fresh"] + 0.08, first

"""Guards and seeds of the experts learner: the DP divergence guard, early stopping, ``--seed``.

Learners exchange what ``share()`` returns through a plain in-memory bus, as in
test_node_learner.py; the built-in learner is built from a NodeConfig.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("torch")

from metamesh.experiments.experts import ExpertsArm, divergence_line
from metamesh.learners import builtin
from metamesh.learners.experts.data import make_node_data
from metamesh.learners.experts.learner import ExpertConfig, ExpertLearner
from metamesh.learners.experts.node_learner import ExpertNodeConfig, ExpertNodeLearner
from metamesh.learners.experts.privacy import PrivacyConfig
from metamesh.node.config import NodeConfig
from metamesh.protocol import Delta

pytestmark = [pytest.mark.torch, pytest.mark.timeout(120)]


def private_node(part: int, clip: float, noise: float) -> ExpertNodeLearner:
    data = make_node_data("medical", part, n_train=128, n_test=256, seed=0)
    privacy = PrivacyConfig(clip_norm=clip, noise_multiplier=noise)
    learner = ExpertLearner(data, ExpertConfig(seed=part, init_seed=0, privacy=privacy))
    config = ExpertNodeConfig(exchange_domain="medical", rounds=8, diverge_factor=3.0)
    return ExpertNodeLearner(learner, config)


def run(group: Sequence[ExpertNodeLearner], rounds: int) -> list[list[tuple[str, dict[str, object]]]]:
    events: list[list[tuple[str, dict[str, object]]]] = [[] for _ in group]

    async def go() -> None:
        for _ in range(rounds):
            for i, lrn in enumerate(group):
                await lrn.step()
                events[i] += lrn.drain_events()
                for domain, body in lrn.share():
                    for other in group:
                        if other is not lrn:
                            other.merge(f"n{i}", domain, body)

    asyncio.run(go())
    return events


def test_dp_divergence_is_caught_and_the_node_falls_back_to_training_alone() -> None:
    # Noise of std 4 on updates clipped to norm 2: the first merges blow the loss up by 100x and more.
    group = [private_node(i, clip=2.0, noise=2.0) for i in range(4)]
    events = run(group, 8)
    for node, log in zip(group, events, strict=True):
        broke = [f for k, f in log if k == "dp_diverged"]
        assert len(broke) == 1, log
        assert isinstance(broke[0]["epsilon"], float) and broke[0]["epsilon"] > 0
        assert node.guard is not None and node.guard.tripped and not node.federating
        rounds = [f for k, f in log if k == "round"]
        after = [r for r in rounds if int(str(r["round"])) > int(str(broke[0]["round"]))]
        # Alone from the best weights so far: no more offsets (epsilon frozen), a loss back in range.
        assert {r["epsilon"] for r in after} == {broke[0]["epsilon"]}
        assert min(float(str(r["heldout_loss"])) for r in after) < 3.0
    arm = ExpertsArm("private", loss={f"n{i}": 1.0 for i in range(4)})
    arm.diverged = {f"n{i}": (1, 2.52) for i in range(4)}
    assert "broke down on 4 of 4 nodes, at epsilon 2.52" in divergence_line(arm)


def test_the_guard_stays_quiet_when_private_learning_works() -> None:
    group = [private_node(i, clip=0.1, noise=1.0) for i in range(4)]
    events = run(group, 8)
    assert not any(k == "dp_diverged" for log in events for k, _ in log)
    assert all(n.federating and n.merges >= 6 for n in group)
    assert "no node's loss diverged" in divergence_line(ExpertsArm("private", loss={"a": 0.5}))


def test_a_diverged_node_stops_publishing_offsets() -> None:
    group = [private_node(i, clip=2.0, noise=2.0) for i in range(4)]
    run(group, 3)
    tripped = [n for n in group if n.guard is not None and n.guard.tripped]
    assert tripped
    asyncio.run(tripped[0].step())
    assert not any(isinstance(b, Delta) for _, b in tripped[0].share())


def experts_node(**settings: object) -> ExpertNodeLearner:
    settings = {"samples": 64, **settings}
    learner = builtin.experts(NodeConfig(learner="experts", domain=("medical",), **settings))  # type: ignore[arg-type]
    assert isinstance(learner, ExpertNodeLearner)
    return learner


def test_the_run_seed_changes_the_data_and_the_initial_weights() -> None:
    a, b, again = experts_node(random_seed=1), experts_node(random_seed=2), experts_node(random_seed=1)
    data = [n.learner.data for n in (a, b, again)]  # type: ignore[attr-defined]
    assert not np.array_equal(data[0].x_train, data[1].x_train)
    assert not np.array_equal(data[0].x_test, data[1].x_test)
    assert np.array_equal(data[0].x_train, data[2].x_train)
    wa, wb, w_again = (n.learner.weights() for n in (a, b, again))
    assert any(not np.array_equal(wa[k], wb[k]) for k in wa)
    assert all(np.array_equal(wa[k], w_again[k]) for k in wa)
    # Nodes of one run start from one w0 (so their offsets average), whatever their part.
    other_part = experts_node(random_seed=1, part=2).learner.weights()
    assert all(np.array_equal(wa[k], other_part[k]) for k in wa)


def test_a_local_node_stops_early_on_its_own_validation_split() -> None:
    node = experts_node(random_seed=3, arm="local", episodes=10, samples=96)
    assert node.stop is not None and len(node.learner.data.y_train) == 72  # type: ignore[attr-defined]
    events = run([node], 10)[0]
    rounds = {int(str(f["round"])): float(str(f["heldout_loss"])) for k, f in events if k == "round"}
    done = next(f for k, f in events if k == "done")
    best = int(str(done["stopped_round"]))
    assert 1 <= best <= 10 and float(str(done["heldout_loss"])) == rounds[best]
    assert float(str(done["last_heldout_loss"])) == rounds[10]
    assert node.learner.heldout_loss() == pytest.approx(rounds[best], abs=1e-4)

"""The braid policy learns: in process, with fixed seeds, four nodes' worth of learners."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from metamesh.experiments.braid import node_mix  # noqa: E402
from metamesh.learners.braid.evaluate import best_single, heldout, summarise  # noqa: E402
from metamesh.learners.braid.fusion import Decision, SimulatedBackend  # noqa: E402
from metamesh.learners.braid.learner import BraidConfig, BraidLearner  # noqa: E402
from metamesh.learners.braid.pool import SIMULATED_POOL  # noqa: E402
from metamesh.learners.braid.tasks import TaskStream, parse_mix  # noqa: E402

pytestmark = pytest.mark.torch
POOL = SIMULATED_POOL
BACKEND = SimulatedBackend(POOL)
NODES, ROUNDS = 4, 24
BUDGETS = (1.5, 4.0, 10.0)
TARGET = 0.6


@dataclass
class Run:
    learners: list[BraidLearner]
    curve: list[float]  # mean held-out reward over nodes after each round

    def tasks_to(self, target: float) -> int | None:
        per_round = self.learners[0].config.tasks_per_round
        return next(((i + 1) * per_round for i, r in enumerate(self.curve) if r >= target), None)


def learners() -> list[BraidLearner]:
    cfg = BraidConfig
    return [
        BraidLearner(
            POOL,
            BACKEND,
            TaskStream(parse_mix(node_mix(i)), budgets=cfg().budgets, latency_limit_ms=3000, seed=i),
            cfg(seed=i),
        )
        for i in range(NODES)
    ]


def run(federated: bool) -> Run:
    """Rounds of local learning; federated learners average their policies after each, as FedAvg does."""
    nodes, curve = learners(), []
    for _ in range(ROUNDS):
        for node in nodes:
            node.train_round()
        if federated:
            weights = [n.weights() for n in nodes]
            avg = {k: np.mean([w[k] for w in weights], axis=0) for k in weights[0]}
            for n in nodes:
                base = n.base_weights()
                n.apply_average({k: avg[k] - base[k] for k in avg}, new_version=n.version + 1,
                                contributors=[], now=0.0)  # fmt: skip
        curve.append(float(np.mean([1 - n.heldout_loss() for n in nodes])))
    return Run(nodes, curve)


@pytest.fixture(scope="module")
def local() -> Run:
    return run(federated=False)


@pytest.fixture(scope="module")
def federated() -> Run:
    return run(federated=True)


@pytest.mark.timeout(240)
def test_the_learned_policy_beats_the_best_single_model_at_lower_cost_on_a_mixed_stream(
    federated: Run,
) -> None:
    """Every budget: higher quality than the best single model that fits it. The mixed stream (every
    type, every budget): higher quality at a lower mean cost. At the tightest budget alone the policy
    may pay a few percent more than the single 1-unit model (its reward prices the quality as worth it).
    The mixed stream held for all 24 nodes of seed sets 0, 10, ..., 50; quality at budget 10 by more
    than 0.02 for 16 of them (docs/braid.md, "Equal cost at every budget"); on this held-out set the
    margin at budget 10 is 0.020-0.063, so there the test asks for higher quality only. The per-type
    lookups (docs/braid.md, "Stronger baselines") are level with the policy or above it: not asserted."""
    singles = {b: best_single(heldout(b, 3000.0), POOL, BACKEND) for b in BUDGETS}
    for node in federated.learners:
        learned = {b: node.evaluate(heldout(b, 3000.0)) for b in BUDGETS}
        for b in BUDGETS:
            name, single = singles[b]
            assert learned[b].quality > single.quality + (0.0 if b == 10.0 else 0.02), (
                b,
                name,
                single.as_dict(),
                learned[b].as_dict(),
            )
            assert learned[b].within_budget == 1.0 and learned[b].within_latency >= 0.99
        assert np.mean([learned[b].quality for b in BUDGETS]) > np.mean(
            [s.quality for _, s in singles.values()]
        )
        assert np.mean([learned[b].cost for b in BUDGETS]) <= np.mean([s.cost for _, s in singles.values()])


@pytest.mark.timeout(240)
def test_every_decision_made_while_learning_kept_within_the_limits(local: Run, federated: Run) -> None:
    for node in [*local.learners, *federated.learners]:
        limits = node.limits
        assert limits["decisions"] == ROUNDS * node.config.tasks_per_round
        assert limits["over_budget"] == 0
        assert limits["over_latency"] <= 0.01 * limits["decisions"], dict(limits)


@pytest.mark.timeout(240)
def test_federated_learning_reaches_the_target_reward_in_fewer_tasks_per_node(
    local: Run, federated: Run
) -> None:
    fed, alone = federated.tasks_to(TARGET), local.tasks_to(TARGET)
    assert fed is not None, federated.curve
    assert alone is None or fed < alone, (federated.curve, local.curve)
    # Federated gets there sooner; it does not end higher (last five rounds 0.587 against local's
    # 0.598 on this held-out set), so that is not asserted.


def test_ratings_are_validated_and_learned_from() -> None:
    node = BraidLearner(POOL, BACKEND, None, BraidConfig(batch=4))
    tasks = heldout(4.0, 3000.0)[:4]
    with pytest.raises(KeyError):
        node.rate(12345, 3)
    ident, _ = node.decide(tasks[0])
    node.run(ident)
    with pytest.raises(ValueError, match="1 to 5 stars"):
        node.rate(ident, 6)
    before = node.weights()
    node.rate(ident, 5)
    for t in tasks[1:]:
        i, _ = node.decide(t)
        node.run(i)
        node.rate(i, 1)
    after = node.weights()
    assert node.tasks == 4
    assert any(not np.array_equal(before[k], after[k]) for k in before)  # a batch of 4 ratings took a step


def test_a_checkpoint_restores_the_policy_and_its_decisions(tmp_path) -> None:
    a = learners()[0]
    a.train_round()
    b = BraidLearner(POOL, BACKEND, None, BraidConfig(seed=0))
    b.load_state(a.state())
    tasks = heldout(4.0, 3000.0)[:50]
    assert [a.greedy_policy(t) for t in tasks] == [b.greedy_policy(t) for t in tasks]
    assert b.rounds == 1 and b.tasks == a.tasks
    with pytest.raises(ValueError, match="another model pool"):
        BraidLearner(POOL[:5], SimulatedBackend(POOL[:5]), None).load_state(a.state())


@pytest.mark.timeout(240)
def test_explanations_name_real_inputs_of_the_decision(federated: Run) -> None:
    from metamesh.learners.braid.policy import PAIR_FEATURES, encode
    from metamesh.learners.braid.pool import MODEL_FEATURES
    from metamesh.learners.braid.tasks import TASK_FEATURES, task_features

    node = federated.learners[0]
    for task in heldout(1.5, 3000.0)[:10]:
        ex = node.explain(task)
        assert ex.decision == node.greedy_policy(task)
        assert sum(ex.strategies.values()) == pytest.approx(1.0)
        assert sum(ex.models.values()) == pytest.approx(1.0)
        assert ex.closed["general-70b"] == "cost 6 > budget 1.5"
        inputs = dict(zip(TASK_FEATURES, task_features(task), strict=True))
        _, model_x = encode([task], POOL, node.latency.planned(), node.ratings)
        names = (*MODEL_FEATURES, *PAIR_FEATURES)
        for m, desc in enumerate(POOL):
            inputs.update({f"{desc.name}.{n}": float(model_x[0, m, i]) for i, n in enumerate(names)})
        chosen = {POOL[m].name for m in ex.decision.models}
        assert ex.drivers
        for d in ex.drivers:
            assert d.feature in inputs and inputs[d.feature] == pytest.approx(d.value, abs=1e-6), d
            assert d.value != 0
            if "." in d.feature:
                assert d.feature.split(".")[0] in chosen
        text = str(ex)
        assert ex.decision.describe(POOL) in text and "driven by: " + ex.drivers[0].feature in text


@pytest.mark.timeout(240)
def test_a_new_task_type_is_handled_well_after_a_handful_of_ratings(federated: Run) -> None:
    """Legal tasks, which no node trained on: 8 rated decisions each, then 300 held-out legal tasks
    under every budget. The trained policies read the new ratings; a fresh policy given the same
    number of ratings cannot."""
    import copy

    from metamesh.learners.braid.node_learner import FEW_SHOT, few_shot, new_type_summary, new_type_tasks

    lex = POOL.index(next(m for m in POOL if m.name == "lex-7b"))
    best = summarise(lambda _t: Decision("single", (lex,)), new_type_tasks(federated.learners[0], 300, 5),
                     POOL, BACKEND).quality  # fmt: skip
    before = [new_type_summary(n).quality for n in federated.learners]
    after = [few_shot(copy.deepcopy(n), seed=i).quality for i, n in enumerate(federated.learners)]
    fresh = [
        few_shot(BraidLearner(POOL, BACKEND, None, BraidConfig(seed=i)), seed=i).quality for i in range(NODES)
    ]
    assert FEW_SHOT <= 8
    assert np.mean(after) > np.mean(before) + 0.02, (before, after)
    assert np.mean(after) > np.mean(fresh) + 0.2, (after, fresh)
    assert np.mean(after) >= 0.75 * best, (after, best)

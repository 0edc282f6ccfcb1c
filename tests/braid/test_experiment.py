"""``metamesh experiment braid`` with real node processes, on a reduced run."""

from __future__ import annotations

import pytest

from tests.cluster import run_experiment

pytest.importorskip("torch")
pytestmark = [pytest.mark.slow, pytest.mark.torch]


@pytest.mark.timeout(300)
def test_the_braid_experiment_learns_federates_and_explains(tmp_path) -> None:
    out = tmp_path / "braid"
    stdout, doc = run_experiment(["braid", "--rounds", "20"], out, timeout=280)
    base = doc["baselines"]
    fed = doc["arms"]["federated"]
    top = max(base, key=float)
    for budget, rows in base.items():
        single = rows["best single"]
        per_node = fed["budgets"][budget]
        for node, s in per_node.items():
            # At the top budget the one best model (general-70b) is strong, and which peers' weights
            # a node merged decides whether it is just above or just below it (0.770-0.834 against
            # 0.771 over three seeds): there the arm's mean is what holds.
            if budget != top:
                assert s["quality"] > single["quality"], (budget, node, s, single)
            assert s["within_budget"] == 1.0 and s["within_latency"] >= 0.99
        mean_quality = sum(s["quality"] for s in per_node.values()) / len(per_node)
        assert mean_quality > single["quality"], (budget, per_node, single)
        assert rows["random"]["quality"] < single["quality"]
    # The mixed stream, every budget: a lower mean cost than the best single model of each budget,
    # for the arm (per node this is asserted in process, where runs repeat exactly; here which
    # peers' weights a node merges depends on timing, and one node in one run paid 3.02 against 3.00).
    nodes = list(fed["budgets"][next(iter(base))])
    single_cost = sum(rows["best single"]["cost"] for rows in base.values()) / len(base)
    arm_cost = sum(fed["budgets"][b][n]["cost"] for b in base for n in nodes) / (len(base) * len(nodes))
    assert arm_cost <= single_cost, (arm_cost, single_cost)
    # Learning speed: the federated nodes reach the best reward the nodes learning alone ever reach,
    # in fewer tasks each. A fixed target would sit in the narrow band between the local arm's best
    # (0.605 in this run; local nodes do not interact, so it repeats exactly) and the federated
    # plateau (0.61-0.65, by timing), and one CI run's federated curve stayed at 0.612-0.622.
    local_curve, fed_curve = doc["arms"]["local"]["mean_curve"], fed["mean_curve"]
    best_local = max(r for _, r in local_curve)
    local = next(n for n, r in local_curve if r >= best_local)
    federated = next((n for n, r in fed_curve if r >= best_local), None)
    assert federated is not None and federated < local, (best_local, fed_curve, local_curve)
    # explanations name the decision, the alternatives' probabilities and real inputs
    assert len(fed["explanations"]) == 3
    assert "decision:" in fed["explanations"][0] and "driven by:" in fed["explanations"][0]
    assert "Sample decisions, explained" in stdout and "best single (general-70b)" in stdout
    assert (out / "pareto.png").stat().st_size > 10_000 and (out / "learning.png").exists()

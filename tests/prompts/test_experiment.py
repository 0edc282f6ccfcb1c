"""A reduced run of the federated prompt experiment with real node processes."""

from pathlib import Path

import pytest

from metamesh.experiments.prompts import PromptExperiment

pytestmark = pytest.mark.slow


@pytest.mark.timeout(240)
def test_federated_beats_local_beats_random(tmp_path: Path) -> None:
    results = PromptExperiment(root=tmp_path, nodes=4, episodes=150, eval_every=50, pace=0.02, seed=1).run()
    mean = {r.arm: r.mean for r in results}
    assert mean["federated"] >= mean["local"] + 0.06, mean
    assert mean["local"] >= mean["random"] + 0.04, mean
    assert mean["federated"] >= 0.80, mean
    fed = next(r for r in results if r.arm == "federated")
    truth = {
        "geography": "concise",
        "math": "think",
        "science": "expert",
        "literature": "format",
        "history": "direct",
        "art": "think",
    }
    assert sum(fed.best.get(c) == s for c, s in truth.items()) >= 4, fed.best


@pytest.mark.timeout(240)
def test_with_a_coordinator_the_late_joiner_starts_ahead_and_the_table_says_so(tmp_path: Path) -> None:
    from metamesh.experiments.prompts import render_table

    results = PromptExperiment(
        root=tmp_path, nodes=3, episodes=150, eval_every=50, pace=0.01, arms=["federated"], coordinator=True
    ).run()
    assert [r.arm for r in results] == ["federated", "federated+c"]
    coordinated = results[1]
    assert coordinated.mean >= 0.75 and coordinated.late is not None
    assert coordinated.late.with_coordinator >= coordinated.late.alone + 0.1, coordinated.late
    table = render_table(results)
    assert "federated+c" in table and "late joiner after federated+c" in table
    assert list((tmp_path / "federated+c" / "coordinator").glob("events.jsonl"))

"""Byzantine peers: 2 of 8 nodes of a domain publish poisoned weights, real node processes.

``metamesh experiment experts --arms domain,attacked,defended``: the poisoners cycle
through x100, sign-flipped, NaN and random weights. Measured on this machine class
(mean held-out MSE of the six honest nodes): clean 0.240, defended 0.255 (6 of 6
honest nodes quarantined both poisoners), attacked ~5e11.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch")

from tests.cluster import run_experiment

pytestmark = [pytest.mark.torch, pytest.mark.slow, pytest.mark.timeout(300)]


@pytest.fixture(scope="module")
def results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict[str, object]]:
    out = tmp_path_factory.mktemp("byzantine")
    args = ["experts", "--domains", "economic", "--per-domain", "8", "--poisoners", "2",
            "--rounds", "16", "--pace", "0.2", "--arms", "domain,attacked,defended"]  # fmt: skip
    stdout, results = run_experiment(args, out)
    assert "defended: 2 poisoners; 6 of 6 honest nodes quarantined all of them" in stdout, stdout
    return results


def honest_mean(results: dict[str, dict[str, object]], arm: str) -> float:
    """Mean loss of the nodes of parts 0-5, the honest ones in the attacked arms."""
    loss = results[arm]["loss"]
    assert isinstance(loss, dict)
    values = [v for name, v in loss.items() if int(name[-1]) < 6]
    assert len(values) == 6, loss
    return sum(values) / len(values)


def test_defences_keep_honest_nodes_within_ten_percent_of_a_clean_run(
    results: dict[str, dict[str, object]],
) -> None:
    clean, defended = honest_mean(results, "domain"), honest_mean(results, "defended")
    assert defended <= 1.10 * clean, (clean, defended)


def test_without_defences_the_same_attack_ruins_the_model(results: dict[str, dict[str, object]]) -> None:
    assert honest_mean(results, "attacked") > 3 * honest_mean(results, "domain")
    quarantined = results["attacked"]["quarantined"]
    assert isinstance(quarantined, dict) and not any(quarantined.values())  # defences were off


def test_every_honest_node_quarantines_the_poisoners_and_no_one_else(
    results: dict[str, dict[str, object]],
) -> None:
    poisoners = results["defended"]["poisoners"]
    quarantined = results["defended"]["quarantined"]
    assert isinstance(poisoners, list) and isinstance(quarantined, dict)
    assert sorted(poisoners) == ["def-eco6", "def-eco7"]
    assert len(quarantined) == 6
    for node, peers in quarantined.items():
        assert sorted(peers) == sorted(poisoners), node

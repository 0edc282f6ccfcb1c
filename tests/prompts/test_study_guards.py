"""The prompts study's table says only what its figures hold up."""

import json
from pathlib import Path

import pytest

from metamesh.experiments.prompt_baselines import measure_baselines
from metamesh.experiments.prompts import ArmResult, PromptExperiment
from metamesh.learners import builtin
from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, held_out_split
from metamesh.learners.prompts.learner import PromptLearner
from metamesh.node.config import NodeConfig


def _arm(name: str, accuracy: float, best: dict[str, str] | None = None) -> ArmResult:
    return ArmResult(name, accuracy={"n0": accuracy, "n1": accuracy}, best=best or {})


@pytest.mark.timeout(60)
def test_an_llm_that_is_never_right_yields_no_strategy_learned(tmp_path: Path) -> None:
    zero = tmp_path / "zero.json"
    zero.write_text(json.dumps({c: {"direct": 0.0, "reasoning": 0.0, "brevity": 0.0, "expert": 0.0,
                                    "format": 0.0} for c in CATEGORIES}))  # fmt: skip
    study = PromptExperiment(root=tmp_path, llm=f"sim:{zero}")
    results = [
        _arm("random", 0.0),
        _arm("local", 0.0),
        _arm("federated", 0.0, dict.fromkeys(CATEGORIES, "think")),
    ]
    text = study.summary(results)
    assert "No strategy learned" in text and "Best strategy per category" not in text
    assert "expected" not in text  # not the simulated default: no seed 000 header
    assert "best single" in text and "oracle" in text


def test_a_study_on_the_simulated_default_prints_the_seeds_expectation_and_its_policy(tmp_path: Path) -> None:
    study = PromptExperiment(root=tmp_path, baselines=False)
    text = study.summary([_arm("random", 0.6), _arm("federated", 0.86, {"math": "think"})])
    assert "seed 000 expected" in text and "math        think" in text and "No strategy" not in text


def test_over_seeds_the_table_gives_medians_ranges_and_the_coordinators_difference(tmp_path: Path) -> None:
    study = PromptExperiment(root=tmp_path, repeats=3, baselines=False, coordinator=True, arms=("federated",))
    assert [a.name for a in study.arm_plan()] == [
        f"{a}@{s}" for s in range(3) for a in ("federated", "federated+c")
    ]
    results = [_arm(f"federated@{s}", 0.80 + 0.05 * s) for s in range(3)]
    results += [_arm(f"federated+c@{s}", 0.82 + 0.05 * s - 0.03 * (s == 2)) for s in range(3)]
    text = study.summary(results)
    assert "federated      85.0%  (80.0%-90.0%)" in text, text
    assert "median +2.0 points (range -1.0 to +2.0)" in text, text


def test_the_baselines_use_the_nodes_held_out_questions_and_bound_the_policy() -> None:
    learner = builtin.prompts(NodeConfig())
    assert isinstance(learner, PromptLearner)
    assert [q.id for q in learner.eval_questions] == [q.id for q in held_out_split(builtin_trivia(), 20)]
    b = measure_baselines("sim", seed=0)
    policy, oracle = b.oracle
    _, single = b.best_single
    assert policy["math"] == "think" and policy["geography"] == "concise" and policy["science"] == "expert"
    assert oracle >= single + 0.15 and b.expected_oracle == pytest.approx(0.9)
    assert abs(oracle - 0.9) < 0.03, oracle  # 600 answers per strategy: within sampling noise

"""The prompt learner applies a coordinator's priors and exploration rates, and rejects bad ones."""

from __future__ import annotations

import numpy as np

from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, question_stream
from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
from metamesh.llm.simulated import SimulatedLLM
from metamesh.protocol import Meta


def learner(**cfg: object) -> PromptLearner:
    questions = builtin_trivia()
    config = PromptLearnerConfig(**cfg)  # type: ignore[arg-type]
    stream = question_stream(questions, weights=dict.fromkeys(CATEGORIES, 1.0), seed=0)
    return PromptLearner(SimulatedLLM(questions, seed=0), stream, config=config, categories=CATEGORIES)


def prior_meta(values: list[float], visits: list[float], actions: tuple[str, ...], **params: float) -> Meta:
    return Meta(version=3, params=params, labels={"actions": actions},
                tensors={"prior.math": np.array([values, visits])})  # fmt: skip


def test_a_prior_row_is_aligned_by_action_label_and_worth_at_most_min_tries_visits() -> None:
    lrn = learner(min_tries=6)
    own = lrn.actions
    # The coordinator's actions in another order, one this node does not have.
    actions = (own[2], "telepathy", own[0])
    lrn.apply_meta(prior_meta([8.0, 9.0, 2.0], [40.0, 50.0, 3.0], actions, **{"eps.math": 0.07}))
    row = lrn.view("math")
    assert row.values[2] == 8.0 and row.values[0] == 2.0
    assert row.visits[2] == 6.0 and row.visits[0] == 3.0 and row.visits.sum() == 9.0
    assert lrn.meta_epsilon == {"math": 0.07}
    # Own experience outweighs it as it grows: 6 own visits at reward 0 halve the prior's 8.
    for _ in range(6):
        lrn.own["math"].visits[2] += 1
    assert lrn.view("math").values[2] == 4.0
    # Unrelated categories are untouched.
    assert lrn.view("art").visits.sum() == 0


def test_a_node_with_a_prior_chooses_the_best_strategy_at_once() -> None:
    lrn = learner(min_tries=2, epsilon_start=1.0)
    actions = tuple(lrn.actions)
    values = [1.0] * len(actions)
    values[3] = 9.0
    lrn.apply_meta(prior_meta(values, [10.0] * len(actions), actions, **{"eps.math": 0.0}))
    choices = [lrn.choose("math") for _ in range(40)]
    assert choices.count(3) >= 34, choices  # settled: the prior's best, but for the 5% exploration floor
    fresh = learner(min_tries=2, epsilon_start=1.0)
    assert len({fresh.choose("math") for _ in range(20)}) > 1


def test_malformed_priors_and_rates_are_rejected_or_ignored() -> None:
    lrn = learner()
    actions = tuple(lrn.actions[:2])
    lrn.apply_meta(prior_meta([1.0, 2.0, 3.0], [1.0, 1.0, 1.0], actions))  # 3 columns for 2 labels
    lrn.apply_meta(prior_meta([1.0, 2.0], [-1.0, 1.0], actions))  # negative visits
    lrn.apply_meta(prior_meta([1.0, 500.0], [1.0, 1.0], actions))  # beyond any reward
    assert lrn.rejected == 3 and lrn.priors == {}
    lrn.apply_meta(Meta(version=4, params={"eps.math": 7.0, "eps.nowhere": 0.1}))
    assert lrn.meta_epsilon == {}


def test_an_insane_q_table_is_refused_and_its_sender_blamed() -> None:
    from metamesh.protocol import QTable

    lrn = learner()
    n = len(lrn.actions)
    sane = QTable(("math",), tuple(lrn.actions), np.ones((1, n)), np.ones((1, n)), 5)
    insane = QTable(("math",), tuple(lrn.actions), np.full((1, n), 1e6), np.ones((1, n)), 5)
    negative = QTable(("math",), tuple(lrn.actions), np.ones((1, n)), -np.ones((1, n)), 5)
    lrn.merge("good", "math", sane)
    lrn.merge("bad", "math", insane)
    lrn.merge("bad", "math", negative)
    assert ("good", "math") in lrn.peers and ("bad", "math") not in lrn.peers
    assert lrn.drain_blame() == [("bad", "insane_values"), ("bad", "insane_values")]
    assert lrn.drain_blame() == []


def test_coherence_is_how_often_a_node_chooses_what_its_peers_rate_best() -> None:
    from metamesh.learners.prompts.qlearning import QRow

    lrn = learner()
    n = len(lrn.actions)
    assert lrn.coherence() is None and lrn.peers_choice("math") is None  # no peers yet
    lrn.peers[("p", "math")] = QRow(np.eye(n)[1] * 3, np.ones(n))
    lrn.peers[("q", "math")] = QRow(np.eye(n)[1] * 2, np.ones(n))
    lrn.peers[("r", "math")] = QRow(np.eye(n)[2] * 3, np.ones(n))
    assert lrn.peers_choice("math") == 1  # two of three peers rate strategy 1 best
    for agreed in (True, True, False, True):
        lrn.note_agreement(agreed)
    assert lrn.coherence() == 0.75

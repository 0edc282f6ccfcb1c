"""The prompt learner counts every visit once, however often peers' tables travel.

It keeps its own experience apart from the latest table of each peer (a newer table replaces the
older, never adds to it) and publishes only its own: the properties the removed generic Q-table
merge in gossip was tested for, checked here on the one implementation the product runs.
"""

from __future__ import annotations

import random

import numpy as np

from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, question_stream
from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
from metamesh.learners.prompts.qlearning import QRow, merge_rows
from metamesh.llm.simulated import SimulatedLLM
from metamesh.protocol import QTable


def _learner() -> PromptLearner:
    questions = builtin_trivia()
    return PromptLearner(
        SimulatedLLM(questions, seed=0),
        question_stream(questions, weights=dict.fromkeys(CATEGORIES, 1.0), seed=0),
        config=PromptLearnerConfig(),
        categories=CATEGORIES,
    )


def _table(learner: PromptLearner, category: str, visits: float, value: float) -> QTable:
    n = len(learner.actions)
    return QTable((category,), tuple(learner.actions), np.full((1, n), value), np.full((1, n), visits), 1)


def test_a_peer_table_received_again_or_renewed_replaces_the_old_one() -> None:
    learner = _learner()
    category = CATEGORIES[0]
    for _ in range(5):  # the same table relayed five times over the mesh
        learner.merge("peer", category, _table(learner, category, 3.0, 0.5))
    assert learner.view(category).visits.tolist() == [3.0] * len(learner.actions)
    learner.merge("peer", category, _table(learner, category, 4.0, 0.7))  # its next version
    view = learner.view(category)
    assert view.visits.tolist() == [4.0] * len(learner.actions)
    assert np.allclose(view.values, 0.7)


def test_shared_tables_are_own_experience_only() -> None:
    a, b = _learner(), _learner()
    category = CATEGORIES[0]
    a.own[category].visits[:] = 2.0
    a.own[category].values[:] = 0.4
    b.merge("a", category, dict(a.share())[category])  # type: ignore[arg-type]
    for _ in range(3):  # b's merged view goes back and forth: a must not take it in as b's
        for domain, body in b.share():
            a.merge("b", domain, body)
        for domain, body in a.share():
            b.merge("a", domain, body)
    assert a.view(category).visits.tolist() == [2.0] * len(a.actions)
    assert b.view(category).visits.tolist() == [2.0] * len(b.actions)


def test_the_visit_weighted_merge_is_order_independent() -> None:
    rng = np.random.default_rng(0)
    rows = [QRow(rng.normal(size=4), rng.integers(0, 9, size=4).astype(float)) for _ in range(6)]
    merged = merge_rows(rows, 4)
    shuffled = rows[:]
    random.Random(1).shuffle(shuffled)
    again = merge_rows(shuffled, 4)
    assert np.allclose(merged.values, again.values) and np.array_equal(merged.visits, again.visits)
    expected = sum(r.values * r.visits for r in rows) / np.maximum(sum(r.visits for r in rows), 1)
    assert np.allclose(merged.values, np.where(merged.visits > 0, expected, 0.0))

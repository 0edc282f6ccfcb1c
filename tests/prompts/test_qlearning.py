import random

import numpy as np
import pytest

from metamesh.learners.prompts.qlearning import QRow, choose, epsilon_for, greedy, merge_rows, update


def test_sample_average_update_matches_hand_computation() -> None:
    row = QRow.zeros(3)
    for r in (9.0, -1.0, 7.0):
        update(row, 1, r)
    assert row.visits[1] == 3
    assert row.values[1] == pytest.approx(5.0)  # (9 - 1 + 7) / 3


def test_constant_step_update() -> None:
    row = QRow.zeros(2)
    update(row, 0, 10.0, alpha=0.5)
    update(row, 0, 0.0, alpha=0.5)
    assert row.values[0] == pytest.approx(2.5)  # 0 -> 5 -> 2.5


def test_epsilon_decays_to_its_floor() -> None:
    assert epsilon_for(0, start=1.0, floor=0.05, decay=0.9) == 1.0
    assert epsilon_for(10, start=1.0, floor=0.05, decay=0.9) == pytest.approx(0.9**10)
    assert epsilon_for(1000, start=1.0, floor=0.05, decay=0.9) == 0.05


def test_merge_is_visit_weighted_and_keeps_untried_actions_at_zero() -> None:
    a = QRow(np.array([2.0, 0.0, 8.0]), np.array([1.0, 0.0, 3.0]))
    b = QRow(np.array([6.0, 0.0, 4.0]), np.array([3.0, 0.0, 1.0]))
    m = merge_rows([a, b], 3)
    np.testing.assert_allclose(m.values, [5.0, 0.0, 7.0])  # (2+18)/4, -, (24+4)/4
    np.testing.assert_allclose(m.visits, [4.0, 0.0, 4.0])


def test_choose_tries_every_action_first_then_is_greedy() -> None:
    rng = random.Random(0)
    row = QRow(np.array([1.0, 9.0, 2.0]), np.array([5.0, 5.0, 1.0]))
    assert choose(row, 0.0, rng, min_tries=5) == 2
    row.visits[2] = 5
    assert choose(row, 0.0, rng, min_tries=5) == 1
    assert greedy(row, rng) == 1


def test_visit_weighted_merge_beats_a_plain_mean_on_non_iid_data() -> None:
    """One peer knows a category well (many visits), three barely tried it: the plain
    mean of their values picks the wrong strategy, the visit-weighted one the right."""
    rng = np.random.default_rng(0)
    true = np.array([5.0, 8.0, 3.0])
    expert = QRow(true + rng.normal(0, 0.2, 3), np.array([60.0, 60.0, 60.0]))
    novices = [QRow(np.array([9.0, -1.0, 4.0]), np.array([1.0, 1.0, 1.0])) for _ in range(3)]
    weighted = merge_rows([expert, *novices], 3)
    plain = np.mean([r.values for r in [expert, *novices]], axis=0)
    assert int(np.argmax(weighted.values)) == 1
    assert int(np.argmax(plain)) != 1

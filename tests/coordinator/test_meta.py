"""Each meta-update against values computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metamesh.coordinator.meta import adapt_rate, prior_row, reptile_step, settled_epsilon


def test_reptile_moves_the_init_a_step_towards_the_domain_average() -> None:
    init = {"w": np.array([0.0, 1.0, -2.0], np.float32)}
    target = {"w": np.array([1.0, 1.0, 2.0], np.float32)}
    out = reptile_step(init, target, 0.25)
    np.testing.assert_allclose(out["w"], [0.25, 1.0, -1.0])
    assert out["w"].dtype == np.float32
    np.testing.assert_allclose(reptile_step(init, target, 1.0)["w"], target["w"])
    np.testing.assert_array_equal(init["w"], [0.0, 1.0, -2.0])  # inputs untouched


@pytest.mark.parametrize(
    ("init", "target", "step"),
    [
        ({"w": np.zeros(2)}, {"w": np.zeros(2)}, 0.0),
        ({"w": np.zeros(2)}, {"v": np.zeros(2)}, 0.5),
        ({"w": np.zeros(2)}, {"w": np.zeros(3)}, 0.5),
    ],
)
def test_reptile_rejects_bad_input(init: dict, target: dict, step: float) -> None:
    with pytest.raises(ValueError):
        reptile_step(init, target, step)


def test_rate_rises_while_the_loss_falls_steadily() -> None:
    assert adapt_rate(0.1, [1.0, 0.9, 0.8, 0.7]) == pytest.approx(0.11)
    assert adapt_rate(0.1, [5.0, 1.0, 0.9, 0.8, 0.7]) == pytest.approx(0.11)  # only the last 4 count
    assert adapt_rate(0.95, [1.0, 0.9, 0.8, 0.7]) == 1.0  # clamped to hi


def test_rate_is_cut_when_the_loss_rises_or_oscillates() -> None:
    assert adapt_rate(0.1, [1.0, 0.9, 0.8, 0.85]) == pytest.approx(0.07)  # last step up
    assert adapt_rate(0.1, [1.0, 0.8, 0.9, 0.7]) == pytest.approx(0.07)  # down, up, down: two turns
    assert adapt_rate(1e-4, [1.0, 1.1, 1.2, 1.3]) == 1e-4  # clamped to lo


def test_rate_is_kept_otherwise() -> None:
    assert adapt_rate(0.1, [1.0, 1.1, 0.9, 0.8]) == 0.1  # up then down twice: one turn, last step down
    assert adapt_rate(0.1, [1.0, 0.9, 0.8]) == 0.1  # too few
    assert adapt_rate(0.1, [1.0, math.nan, 0.9, 0.8]) == 0.1  # non-finite losses dropped: too few


def test_prior_row_is_the_visit_weighted_mean() -> None:
    rows = [
        (np.array([1.0, 0.0, 5.0]), np.array([3.0, 0.0, 1.0])),
        (np.array([0.0, 2.0, 1.0]), np.array([1.0, 2.0, 3.0])),
    ]
    values, visits = prior_row(rows)
    # action 0: (1*3 + 0*1) / 4; action 1: 2*2 / 2; action 2: (5*1 + 1*3) / 4
    np.testing.assert_allclose(values, [0.75, 2.0, 2.0])
    np.testing.assert_allclose(visits, [4.0, 2.0, 4.0])
    values, visits = prior_row([(np.array([7.0, 1.0]), np.array([0.0, 2.0]))])
    np.testing.assert_allclose(values, [0.0, 1.0])  # untried: 0, not 7
    with pytest.raises(ValueError):
        prior_row([])


def test_epsilon_falls_as_the_winner_becomes_clear() -> None:
    # gap 0.5, runner-up tried 16 times: 0.02 + 0.28 / (1 + 0.5 * 4) = 0.02 + 0.28 / 3
    assert settled_epsilon(np.array([0.2, 0.7, 0.1]), np.array([16.0, 30.0, 2.0])) == pytest.approx(
        0.02 + 0.28 / 3
    )
    assert settled_epsilon(np.array([0.5, 0.5]), np.array([10.0, 10.0])) == pytest.approx(0.3)  # a tie
    assert settled_epsilon(np.zeros(3), np.zeros(3)) == 0.3  # nothing known
    assert settled_epsilon(np.array([1.0]), np.array([5.0])) == 0.3  # nothing to choose between
    assert settled_epsilon(np.array([1.0, 0.0]), np.array([100.0, 10_000.0])) == pytest.approx(
        0.02 + 0.28 / 101
    )

"""Clipping, noise and the RDP accountant, against values computed here from the closed forms."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from metamesh.errors import ConfigError
from metamesh.learners.experts.privacy import (
    DEFAULT_ORDERS,
    PrivacyConfig,
    RDPAccountant,
    add_noise,
    clip_update,
    global_norm,
    rdp_to_epsilon,
    sampled_gaussian_rdp,
)

DELTA = 1e-5


def reference_epsilon(rounds: int, sigma: float, delta: float, orders: list[float]) -> float:
    """Full participation, written out: min over orders of T*a/(2 sigma^2) + log(1/delta)/(a-1)."""
    return min(rounds * a / (2 * sigma * sigma) + math.log(1 / delta) / (a - 1) for a in orders)


def reference_sampled_rdp(q: float, sigma: float, alpha: int) -> float:
    """Mironov-Talwar-Zhang 2019 for integer alpha, as a plain float sum (fine for small alpha)."""
    total = sum(
        math.comb(alpha, k) * (1 - q) ** (alpha - k) * q**k * math.exp((k * k - k) / (2 * sigma * sigma))
        for k in range(alpha + 1)
    )
    return math.log(total) / (alpha - 1)


# --------------------------------------------------------------------------- clipping and noise

tensor_maps = st.dictionaries(
    st.sampled_from(["a", "b.weight", "c.bias"]),
    arrays(np.float32, st.integers(1, 20), elements=st.floats(-100, 100, width=32)),
    min_size=1,
)


@settings(max_examples=60, deadline=None)
@given(tensor_maps, st.floats(0.01, 50.0))
def test_clip_bounds_the_global_norm_and_keeps_direction(tensors: dict[str, np.ndarray], clip: float) -> None:
    clipped, norm = clip_update(tensors, clip)
    assert norm == pytest.approx(global_norm(tensors))
    assert global_norm(clipped) <= clip * (1 + 1e-5)
    scale = min(1.0, clip / norm) if norm > 0 else 1.0
    for name, t in tensors.items():
        assert clipped[name].dtype == np.float32
        np.testing.assert_allclose(clipped[name], t * scale, rtol=1e-5, atol=1e-6)


def test_clip_leaves_small_updates_alone() -> None:
    t = {"w": np.array([0.3, 0.4], np.float32)}
    clipped, norm = clip_update(t, 1.0)
    assert norm == pytest.approx(0.5)
    np.testing.assert_array_equal(clipped["w"], t["w"])
    with pytest.raises(ValueError):
        clip_update(t, 0.0)


def test_noise_has_the_requested_std_and_is_seeded() -> None:
    zeros = {"a": np.zeros((200, 250), np.float32), "b": np.zeros(50_000, np.float32)}
    noisy = add_noise(zeros, 0.7, np.random.default_rng(5))
    flat = np.concatenate([v.ravel() for v in noisy.values()])
    assert flat.std() == pytest.approx(0.7, rel=0.01)
    assert abs(flat.mean()) < 0.01
    again = add_noise(zeros, 0.7, np.random.default_rng(5))
    np.testing.assert_array_equal(again["a"], noisy["a"])
    assert list(noisy) == list(zeros)


# --------------------------------------------------------------------------- accountant


@pytest.mark.parametrize(("sigma", "rounds"), [(0.8, 1), (1.1, 10), (2.0, 50), (5.0, 200)])
def test_epsilon_matches_the_closed_form(sigma: float, rounds: int) -> None:
    acc = RDPAccountant()
    for _ in range(rounds):
        acc.step(sigma)
    expected = reference_epsilon(rounds, sigma, DELTA, list(DEFAULT_ORDERS))
    assert acc.epsilon(DELTA) == pytest.approx(expected, rel=1e-12)
    # The grid is fine enough to be within 2% of the continuous optimum c + 2 sqrt(c L).
    c, big_l = rounds / (2 * sigma * sigma), math.log(1 / DELTA)
    assert expected == pytest.approx(c + 2 * math.sqrt(c * big_l), rel=0.02)


def test_count_composes_like_repeated_steps() -> None:
    one, many = RDPAccountant(), RDPAccountant()
    for _ in range(7):
        one.step(1.3)
    many.step(1.3, count=7)
    assert one.epsilon(DELTA) == pytest.approx(many.epsilon(DELTA))
    assert many.steps == 7


def test_epsilon_grows_with_rounds_and_shrinks_with_sigma() -> None:
    def eps(sigma: float, rounds: int) -> float:
        acc = RDPAccountant()
        acc.step(sigma, count=rounds)
        return acc.epsilon(DELTA)

    by_rounds = [eps(1.0, t) for t in (1, 2, 5, 10, 100)]
    assert by_rounds == sorted(by_rounds) and len(set(by_rounds)) == len(by_rounds)
    by_sigma = [eps(s, 10) for s in (0.5, 1.0, 2.0, 4.0)]
    assert by_sigma == sorted(by_sigma, reverse=True) and len(set(by_sigma)) == len(by_sigma)
    acc = RDPAccountant()
    assert acc.epsilon(DELTA) == 0.0
    acc.step(0.0)
    assert acc.epsilon(DELTA) == math.inf


@pytest.mark.parametrize(("q", "sigma"), [(0.01, 1.0), (0.1, 1.5), (0.5, 2.0), (0.05, 0.8)])
@pytest.mark.parametrize("alpha", [2, 3, 5, 8, 16])
def test_sampled_gaussian_matches_the_binomial_sum(q: float, sigma: float, alpha: int) -> None:
    got = sampled_gaussian_rdp(q, sigma, alpha)
    assert got == pytest.approx(reference_sampled_rdp(q, sigma, alpha), rel=1e-9)
    assert got <= alpha / (2 * sigma * sigma) + 1e-12  # subsampling amplifies privacy


def test_sampled_gaussian_limits() -> None:
    assert sampled_gaussian_rdp(1.0, 2.0, 7) == pytest.approx(7 / 8)
    assert sampled_gaussian_rdp(0.1, 2.0, 2.5) == math.inf
    assert sampled_gaussian_rdp(0.1, 0.0, 4) == math.inf
    rates = [sampled_gaussian_rdp(q, 1.0, 10) for q in (0.001, 0.01, 0.1, 0.5, 1.0)]
    assert rates == sorted(rates)
    acc = RDPAccountant()
    acc.step(1.0, sample_rate=0.01, count=100)
    full = RDPAccountant()
    full.step(1.0, count=100)
    assert 0 < acc.epsilon(DELTA) < full.epsilon(DELTA)


def test_rdp_to_epsilon_and_state_round_trip() -> None:
    assert rdp_to_epsilon([1.0, 0.5], [2.0, 3.0], 0.01) == pytest.approx(
        min(1 + math.log(100), 0.5 + math.log(100) / 2)
    )
    acc = RDPAccountant()
    acc.step(1.2, count=3)
    acc.step(0.0)  # inf somewhere: must survive the round trip
    back = RDPAccountant.from_dict(acc.to_dict())
    assert back.steps == 4 and back.orders == acc.orders
    np.testing.assert_array_equal(back.rdp, acc.rdp)
    with pytest.raises(ValueError):
        RDPAccountant.from_dict({"orders": [2.0], "rdp": [1.0, 2.0], "steps": 1})


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(clip_norm=0.0, noise_multiplier=1.0),
        dict(clip_norm=1.0, noise_multiplier=-1.0),
        dict(clip_norm=1.0, noise_multiplier=1.0, delta=1.0),
        dict(clip_norm=1.0, noise_multiplier=1.0, sample_rate=0.0),
    ],
)
def test_privacy_config_rejects_bad_values(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigError):
        PrivacyConfig(**kwargs)

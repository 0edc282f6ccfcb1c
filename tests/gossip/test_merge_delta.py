"""Weight-delta rules against hand-computed results and against outliers."""

from __future__ import annotations

import numpy as np
import pytest

from metamesh.errors import Reason
from metamesh.gossip.merge import (
    Update,
    aggregate,
    coordinate_median,
    fedavg,
    finite,
    krum,
    norm_bound,
    trimmed_mean,
)
from metamesh.gossip.merge import delta as delta_mod
from metamesh.gossip.merge.delta import krum_select, sq_norms


def u(vals: list[float], samples: int = 1, staleness: float = 0.0, dtype: type = np.float64) -> Update:
    a = np.array(vals, dtype=dtype)
    return Update({"w": a, "b": a[:1] * 2}, samples, staleness)


def test_update_validation() -> None:
    with pytest.raises(ValueError):
        Update({}, -1)
    with pytest.raises(ValueError):
        Update({}, 1, staleness=-0.5)
    with pytest.raises(ValueError, match="shape"):
        fedavg([Update({"w": np.zeros(2)}, 1), Update({"w": np.zeros(3)}, 1)])
    with pytest.raises(ValueError, match="names"):
        fedavg([Update({"w": np.zeros(2)}, 1), Update({"w": np.zeros(2), "v": np.zeros(1)}, 1)])
    with pytest.raises(ValueError, match="no updates"):
        fedavg([])


def test_fedavg_hand_computed_with_staleness() -> None:
    ups = [u([1.0, 2.0], samples=1), u([3.0, 6.0], samples=3), u([100.0, 100.0], samples=4, staleness=2)]
    # weights: 1, 3, 4 * 0.5**2 = 1 -> (1*[1,2] + 3*[3,6] + 1*[100,100]) / 5 = [22, 24]
    out = fedavg(ups)
    np.testing.assert_allclose(out["w"], [22.0, 24.0])
    np.testing.assert_allclose(out["b"], [44.0])
    out = fedavg(ups, staleness_decay=1.0)  # weights 1, 3, 4 -> (1 + 9 + 400)/8, (2 + 18 + 400)/8
    np.testing.assert_allclose(out["w"], [51.25, 52.5])
    with pytest.raises(ValueError, match="zero weight"):
        fedavg([u([1.0], samples=0)])
    with pytest.raises(ValueError):
        fedavg(ups, staleness_decay=0.0)


def test_fedavg_keeps_float32_and_shapes_and_does_not_mutate() -> None:
    rng = np.random.default_rng(0)
    size = 3 * delta_mod.BLOCK + 17  # several blocks and a ragged tail
    arrays = [rng.standard_normal((size,), dtype=np.float32).reshape(-1, 1) for _ in range(5)]
    copies = [a.copy() for a in arrays]
    ups = [Update({"w": a}, samples=i + 1) for i, a in enumerate(arrays)]
    out = fedavg(ups)["w"]
    assert out.dtype == np.float32 and out.shape == (size, 1)
    ref = sum((i + 1) * a.astype(np.float64) for i, a in enumerate(arrays)) / 15
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    for a, c in zip(arrays, copies, strict=True):
        np.testing.assert_array_equal(a, c)


def test_integer_tensors_are_averaged_as_floats() -> None:
    out = fedavg([Update({"w": np.array([1, 2])}, 1), Update({"w": np.array([2, 3])}, 1)])
    np.testing.assert_allclose(out["w"], [1.5, 2.5])
    assert out["w"].dtype.kind == "f"


def test_trimmed_mean_hand_computed() -> None:
    ups = [u([1.0, -5.0]), u([2.0, 0.0]), u([3.0, 1.0]), u([4.0, 2.0]), u([1000.0, 9.0])]
    # n=5, trim 0.2 -> drop 1 each side per coordinate: mean(2,3,4)=3, mean(0,1,2)=1
    np.testing.assert_allclose(trimmed_mean(ups, 0.2)["w"], [3.0, 1.0])
    np.testing.assert_allclose(trimmed_mean(ups, 0.0)["w"], [202.0, 1.4])
    with pytest.raises(ValueError):
        trimmed_mean(ups, 0.5)


def test_median_hand_computed() -> None:
    ups = [u([1.0, 7.0]), u([2.0, -1.0]), u([50.0, 3.0])]
    np.testing.assert_allclose(coordinate_median(ups)["w"], [2.0, 3.0])
    np.testing.assert_allclose(coordinate_median(ups[:2])["w"], [1.5, 3.0])


def test_order_statistics_across_blocks() -> None:
    rng = np.random.default_rng(1)
    size = 2 * delta_mod.BLOCK + 6
    stack = rng.standard_normal((7, size)).astype(np.float32)
    ups = [Update({"w": row.reshape(-1, 2)}, 1) for row in stack]
    np.testing.assert_allclose(coordinate_median(ups)["w"].ravel(), np.median(stack, axis=0), rtol=1e-6)
    srt = np.sort(stack, axis=0)
    trimmed = trimmed_mean(ups, 0.3)["w"].ravel()
    np.testing.assert_allclose(trimmed, srt[2:5].mean(axis=0), rtol=1e-5, atol=1e-6)


def test_krum_hand_computed() -> None:
    # scalars 0, 1, 2, 10, -20 ; n=5, f=1 -> score = sum of the 2 smallest squared distances
    ups = [Update({"w": np.array([x])}, 1) for x in (0.0, 1.0, 2.0, 10.0, -20.0)]
    # scores: 0 -> 1+4=5 ; 1 -> 1+1=2 ; 2 -> 1+4=5 ; 10 -> 64+81=145 ; -20 -> 400+441=841
    assert krum_select(ups, f=1, m=1) == [1]
    assert krum_select(ups, f=1, m=3) == [1, 0, 2]
    np.testing.assert_allclose(krum(ups, f=1)["w"], [1.0])
    np.testing.assert_allclose(krum(ups, f=1, m=3)["w"], [1.0])
    with pytest.raises(ValueError, match="2f"):
        krum(ups, f=2)
    with pytest.raises(ValueError):
        krum(ups, f=1, m=5)


def honest_and_bad(kind: str, n: int = 6) -> tuple[list[Update], np.ndarray]:
    rng = np.random.default_rng(42)
    true = rng.standard_normal(1000)
    ups = [Update({"w": true + 0.05 * rng.standard_normal(1000)}, 10) for _ in range(n)]
    bad = ups[0].tensors["w"] * (100.0 if kind == "scaled" else -1.0)
    if kind == "flipped":
        bad = bad * 5  # a sign-flipped update pushed 5x (a stronger attack than a bare flip)
    return [*ups, Update({"w": bad}, 10)], true


@pytest.mark.parametrize("kind", ["scaled", "flipped"])
def test_robust_rules_resist_one_outlier(kind: str) -> None:
    ups, true = honest_and_bad(kind)
    bad_err = np.linalg.norm(fedavg(ups)["w"] - true)
    assert bad_err > 5  # plain FedAvg is ruined
    assert krum_select(ups, f=1, m=1)[0] != len(ups) - 1  # Krum picks an honest one
    for out in (krum(ups, f=1), krum(ups, f=1, m=3), coordinate_median(ups), trimmed_mean(ups, 0.2)):
        assert np.linalg.norm(out["w"] - true) < 0.1 * np.linalg.norm(true)


def test_norm_bound_and_finite() -> None:
    ups, _ = honest_and_bad("scaled")
    kept, rejected = norm_bound(ups, factor=3.0)
    assert rejected == [ups[-1]] and kept == ups[:-1]
    nan = Update({"w": np.array([1.0, np.nan])}, 1)
    inf = Update({"w": np.array([np.inf, 0.0], dtype=np.float32)}, 1)
    ok = Update({"w": np.array([1.0, 1.0])}, 1)
    assert finite([nan, ok, inf]) == ([ok], [nan, inf])
    assert np.isnan(sq_norms([nan])[0]) and np.isinf(sq_norms([inf])[0])
    huge = Update({"w": np.array([3e20, 4e20], dtype=np.float32)}, 1)  # the float32 square overflows
    assert sq_norms([huge])[0] == pytest.approx(25e40, rel=1e-6) and finite([huge]) == ([huge], [])
    # hand-computed: norms 1, 2, 3, 10 -> median 2.5, bound 7.5 -> 10 rejected
    ups4 = [Update({"w": np.array([x, 0.0])}, 1) for x in (1.0, 2.0, 3.0, 10.0)]
    assert norm_bound(ups4, factor=3.0) == (ups4[:3], ups4[3:])
    assert norm_bound(ups4, factor=4.0) == (ups4, [])


def test_aggregate_filters_then_applies_rule() -> None:
    ups, true = honest_and_bad("scaled")
    nan = Update({"w": np.full(1000, np.nan)}, 10)
    res = aggregate([*ups, nan], "fedavg")
    assert res.rejected == ((6, Reason.OUTLIER), (7, Reason.NON_FINITE))
    assert res.used == tuple(range(6))
    assert np.linalg.norm(res.tensors["w"] - true) < 0.05 * np.linalg.norm(true)
    for rule in ("trimmed_mean", "median", "krum"):
        r = aggregate([*ups, nan], rule, norm_factor=None)  # type: ignore[arg-type]
        assert r.rejected == ((7, Reason.NON_FINITE),)
        assert np.linalg.norm(r.tensors["w"] - true) < 0.1 * np.linalg.norm(true)
    with pytest.raises(ValueError, match="usable"):
        aggregate([nan, nan])
    with pytest.raises(ValueError, match="usable"):
        aggregate(ups, min_updates=7)
    with pytest.raises(ValueError, match="unknown rule"):
        aggregate(ups, "mean")  # type: ignore[arg-type]


def test_direction_screen_catches_what_the_norm_bound_misses() -> None:
    from metamesh.gossip.merge.delta import direction_screen

    rng = np.random.default_rng(0)
    center = rng.normal(size=10_000).astype(np.float32)
    honest = [Update({"w": center + 0.5 * rng.normal(size=10_000).astype(np.float32)}, 10) for _ in range(5)]
    far = Update({"w": 0.3 * center + 2.0 * rng.normal(size=10_000).astype(np.float32)}, 10)  # a rare region
    flipped = Update({"w": -center}, 10)
    noise = Update({"w": rng.normal(size=10_000).astype(np.float32)}, 10)  # same norm, no signal
    updates = [*honest, far, flipped, noise]
    assert aggregate(updates, norm_factor=3.0).rejected == ()  # norms all look ordinary
    assert direction_screen(updates, 0.05) == list(range(6))  # the far honest one is kept
    result = aggregate(updates, norm_factor=3.0, min_cosine=0.05)
    assert result.used == tuple(range(6)) and {i for i, _ in result.rejected} == {6, 7}
    mean = np.mean([u.tensors["w"] for u in [*honest, far]], axis=0)
    np.testing.assert_allclose(result.tensors["w"], mean, rtol=1e-5, atol=1e-5)
    assert direction_screen(updates[6:], 0.05) == [0, 1]  # no majority to measure against
    with pytest.raises(ValueError):
        direction_screen(updates, 1.5)


def test_a_trusted_update_survives_a_majority_of_bad_ones() -> None:
    own = Update({"w": np.ones(100, np.float32)}, 10)
    bad = [Update({"w": np.full(100, -50.0 * k, np.float32)}, 10) for k in (1, 2)]
    # Against the median of two bad updates that agree, the own one looks like the outlier...
    assert 0 not in aggregate([own, *bad], norm_factor=None, min_cosine=0.05).used
    # ...unless it is trusted: a node surrounded by bad peers keeps its own model in the mix.
    assert 0 in aggregate([own, *bad], norm_factor=None, min_cosine=0.05, trusted=(0,)).used
    assert 0 in aggregate([own, *bad], norm_factor=1.0, trusted=(0,)).used


def test_with_the_screen_on_two_updates_are_never_merged_unscreened() -> None:
    honest = Update({"w": np.ones(10, np.float32)}, 10)
    poisoned = Update({"w": np.full(10, -100.0, np.float32)}, 10)
    # Without the direction screen, two updates pass the norm bound (the median of two is their mean).
    assert aggregate([honest, poisoned], norm_factor=3.0).used == (0, 1)
    with pytest.raises(ValueError):  # a late joiner adopting from two peers: nothing it can trust
        aggregate([honest, poisoned], norm_factor=3.0, min_cosine=0.05)
    assert aggregate([honest, poisoned], norm_factor=3.0, min_cosine=0.05, trusted=(0,)).used == (0,)

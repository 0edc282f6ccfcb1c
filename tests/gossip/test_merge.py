import numpy as np
import pytest

from metamesh.gossip.merge import (
    Update,
    aggregate,
    coordinate_median,
    fedavg,
    krum,
    l2_norm,
    screen,
    trimmed_mean,
)


def u(values: list[float], samples: int = 1, staleness: float = 0.0, sender: str = "") -> Update:
    return Update({"w": np.array(values, dtype=np.float32)}, samples, staleness, sender)


def test_fedavg_weights_by_samples_and_discounts_staleness() -> None:
    out = fedavg([u([1.0, 2.0], samples=1), u([3.0, 6.0], samples=3)])
    np.testing.assert_allclose(out["w"], [2.5, 5.0])  # (1*1 + 3*3)/4, (2 + 18)/4
    assert out["w"].dtype == np.float32
    stale = fedavg([u([0.0], samples=2), u([4.0], samples=2, staleness=1)], staleness_decay=0.5)
    np.testing.assert_allclose(stale["w"], [4.0 / 3.0])  # weights 2 and 1


def test_robust_rules_ignore_one_outlier() -> None:
    honest = [u([1.0, -1.0]), u([1.2, -0.8]), u([0.8, -1.2]), u([1.1, -0.9])]
    poisoned = [*honest, u([100.0, -100.0])]
    # sorted per coordinate: 0.8 1.0 1.1 1.2 100 and -100 -1.2 -1.0 -0.9 -0.8
    np.testing.assert_allclose(coordinate_median(poisoned)["w"], [1.1, -1.0], rtol=1e-6)
    np.testing.assert_allclose(trimmed_mean(poisoned, trim=0.2)["w"], [1.1, -3.1 / 3], rtol=1e-6)
    assert abs(fedavg(poisoned)["w"][0]) > 10  # the plain mean is dragged away


def test_krum_picks_an_honest_update() -> None:
    honest = [u([1.0, 1.0]), u([1.1, 0.9]), u([0.9, 1.1]), u([1.0, 1.05])]
    attacker = u([-10.0, -10.0])
    out = krum([*honest, attacker], f=1)
    assert np.linalg.norm(out["w"] - np.array([1.0, 1.0])) < 0.2
    with pytest.raises(ValueError, match="n > f"):
        krum(honest[:3], f=1)


def test_screen_rejects_nan_outliers_and_shape_mismatch_with_reasons() -> None:
    good = [u([1.0, 1.0]), u([1.0, 2.0]), u([2.0, 1.0])]
    bad_nan = u([np.nan, 1.0], sender="nan")
    bad_big = u([100.0, 100.0], sender="big")
    bad_shape = Update({"w": np.ones(3, np.float32)}, 1, sender="shape")
    kept, rejected = screen([*good, bad_nan, bad_big, bad_shape], norm_factor=3.0)
    assert kept == good
    assert {(r.sender, why) for r, why in rejected} == {
        ("nan", "non_finite"),
        ("big", "outlier"),
        ("shape", "shape_mismatch"),
    }
    assert not np.isfinite(l2_norm(bad_nan))


def test_aggregate_front_and_errors() -> None:
    ups = [u([1.0]), u([3.0]), u([2.0]), u([np.inf])]
    merged, rejected = aggregate(ups, rule="median")
    np.testing.assert_allclose(merged["w"], [2.0])
    assert [why for _, why in rejected] == ["non_finite"]
    with pytest.raises(ValueError, match="unknown rule"):
        aggregate(ups, rule="average")
    with pytest.raises(ValueError, match="rejected"):
        aggregate([u([np.nan])])
    with pytest.raises(ValueError, match="trim"):
        trimmed_mean(ups, trim=0.5)

"""Synthetic domain tasks are deterministic and non-IID; user data loads or fails with a reason."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from metamesh.errors import ConfigError
from metamesh.learners.experts.data import (
    DOMAINS,
    N_FEATURES,
    N_REGIONS,
    domain_function,
    load_user_data,
    make_node_data,
    node_noise,
    region_centers,
)


def test_deterministic_and_shaped() -> None:
    a = make_node_data("medical", 1, n_train=50, n_test=30, seed=7)
    b = make_node_data("medical", 1, n_train=50, n_test=30, seed=7)
    c = make_node_data("medical", 1, n_train=50, n_test=30, seed=8)
    for name in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        arr = getattr(a, name)
        assert arr.dtype == np.float32 and arr.flags.c_contiguous
    assert a.x_train.shape == (50, N_FEATURES) and a.y_test.shape == (30,)
    assert not np.array_equal(a.x_train, c.x_train)
    assert a.domain == "medical" and a.affinity() == {"medical": 1.0}


def test_nodes_sample_their_own_region_and_the_test_set_covers_all() -> None:
    centers = region_centers()
    for i in range(N_REGIONS):
        d = make_node_data("economic", i, n_train=400, n_test=2000, seed=0)
        nearest = np.argmin(((d.x_train[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        assert (nearest == i).mean() > 0.95
        test_regions = np.argmin(((d.x_test[:, None, :] - centers[None]) ** 2).sum(-1), axis=1)
        shares = np.bincount(test_regions, minlength=N_REGIONS) / len(test_regions)
        assert np.all(np.abs(shares - 1 / N_REGIONS) < 0.05)


def test_domains_disagree_and_are_normalised() -> None:
    x = make_node_data("economic", 0, n_train=1, n_test=8000, seed=3).x_test.astype(np.float64)
    ys = {d: domain_function(d, x) for d in (*DOMAINS, "geography")}
    for y in ys.values():
        assert abs(y.mean()) < 0.1 and 0.9 < y.std() < 1.1
    # The built-in domains are decorrelated: a model shared across them can only learn their mean.
    for i, a in enumerate(DOMAINS):
        for b in DOMAINS[i + 1 :]:
            assert abs(np.corrcoef(ys[a], ys[b])[0, 1]) < 0.05
            assert np.mean((ys[a] - ys[b]) ** 2) > 1.8
    with pytest.raises(ValueError):
        domain_function("medical", np.zeros((3, 5)))


def test_regions_knob() -> None:
    assert region_centers(3).shape == (3, N_FEATURES)
    np.testing.assert_array_equal(region_centers(3), region_centers()[:3])
    dists = np.linalg.norm(region_centers()[:, None] - region_centers()[None], axis=-1)
    assert np.all(dists[~np.eye(N_REGIONS, dtype=bool)] > 2.5)
    d = make_node_data("medical", 4, n_train=300, n_test=3000, seed=0, regions=3)
    nearest = np.argmin(((d.x_train[:, None, :] - region_centers(3)[None]) ** 2).sum(-1), axis=1)
    assert (nearest == 4 % 3).mean() > 0.95
    test_regions = np.argmin(((d.x_test[:, None, :] - region_centers()[None]) ** 2).sum(-1), axis=1)
    assert np.isin(test_regions, [0, 1, 2]).mean() > 0.99 and set(test_regions.tolist()) >= {0, 1, 2}
    with pytest.raises(ConfigError, match="regions"):
        make_node_data("medical", 0, n_train=5, n_test=5, seed=0, regions=N_FEATURES + 1)
    with pytest.raises(ValueError):
        region_centers(0)


def test_label_noise_differs_by_node() -> None:
    noises = {node_noise(i) for i in range(4)}
    assert len(noises) == 4
    d = make_node_data("technology", 3, n_train=2000, n_test=1, seed=1)
    resid = d.y_train - domain_function("technology", d.x_train.astype(np.float64))
    assert resid.std() == pytest.approx(node_noise(3), rel=0.1)


@pytest.mark.parametrize("kwargs", [dict(domain="", node_index=0), dict(domain="x", node_index=-1)])
def test_make_node_data_rejects_bad_arguments(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigError):
        make_node_data(**kwargs, n_train=5, n_test=5, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError):
        make_node_data("x", 0, n_train=0, n_test=5, seed=0)


# --------------------------------------------------------------------------- user data


def write_csv(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_load_csv(tmp_path: Path) -> None:
    rows = ["f1,f2,target,domain"] + [
        f"{i},{i * 2},{i * 0.5},{'medical' if i % 4 else 'economic'}" for i in range(20)
    ]
    p = write_csv(tmp_path / "d.csv", "\n".join(rows) + "\n")
    d = load_user_data(p, test_fraction=0.25, seed=1)
    assert d.x_train.shape == (15, 2) and d.x_test.shape == (5, 2)
    assert d.domain == "medical"
    assert d.affinity() == {"economic": 0.25, "medical": 0.75}
    both = np.concatenate([d.x_train[:, 0], d.x_test[:, 0]])
    assert sorted(both.tolist()) == list(range(20))
    np.testing.assert_allclose(d.y_train, d.x_train[:, 0] * 0.5)


def test_load_npz(tmp_path: Path) -> None:
    p = tmp_path / "d.npz"
    x = np.arange(30, dtype=np.float64).reshape(10, 3)
    np.savez(p, x=x, y=x.sum(1), domain=np.array("technology"))
    d = load_user_data(p)
    assert d.domain == "technology" and d.n_features == 3
    assert len(d.y_train) + len(d.y_test) == 10
    np.testing.assert_allclose(d.y_test, d.x_test.sum(1))


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("", "empty"),
        ("f1,target\n1,2\n", "'domain'"),
        ("f1,target,domain,target\n1,2,a,3\n", "'target'"),
        ("target,domain\n1,a\n2,b\n", "no feature columns"),
        ("f1,target,domain\n1,2,a\nx,3,a\n", "line 3"),
        ("f1,target,domain\n1,2,a\n1,2\n", "line 3 has 2 fields"),
        ("f1,target,domain\n1,2,a\n", "at least 2 rows"),
        ("f1,target,domain\n1,2,a\nnan,2,a\n", "finite"),
        ("f1,target,domain\n1,2,a\n1,2,\n", "non-empty domain"),
    ],
)
def test_bad_csv_names_file_and_reason(tmp_path: Path, text: str, reason: str) -> None:
    p = write_csv(tmp_path / "bad.csv", text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_user_data(p)
    assert "bad.csv" in str(info.value)


def test_bad_npz_and_paths(tmp_path: Path) -> None:
    p = tmp_path / "bad.npz"
    np.savez(p, x=np.zeros((4, 2)), y=np.zeros(4))
    with pytest.raises(ConfigError, match="missing arrays"):
        load_user_data(p)
    np.savez(p, x=np.zeros((4, 2)), y=np.zeros(3), domain=np.array("a"))
    with pytest.raises(ConfigError, match="y must be"):
        load_user_data(p)
    np.savez(p, x=np.zeros((4, 2)), y=np.zeros(4), domain=np.array(["a", "b"]))
    with pytest.raises(ConfigError, match="domain must be"):
        load_user_data(p)
    np.savez(p, x=np.zeros((4, 2)), y=np.zeros(4), domain=np.array([{"a": 1}], dtype=object))
    with pytest.raises(ConfigError, match=r"bad\.npz"):
        load_user_data(p)
    with pytest.raises(ConfigError, match="cannot read"):
        load_user_data(tmp_path / "missing.csv")
    with pytest.raises(ConfigError, match="unsupported"):
        load_user_data(tmp_path / "data.json")
    good = write_csv(tmp_path / "ok.csv", "f,target,domain\n1,2,a\n3,4,a\n")
    with pytest.raises(ConfigError, match="test_fraction"):
        load_user_data(good, test_fraction=1.0)

"""Q-table merge: hand-computed visit-weighted averages, label union, no count inflation."""

from __future__ import annotations

import numpy as np
import pytest

from metamesh.gossip.merge import PeerTables, QTableValue, merge_qtables


def q(states: str, actions: str, values: list[list[float]], visits: list[list[float]]) -> QTableValue:
    return QTableValue(tuple(states), tuple(actions), np.array(values), np.array(visits))


def test_validation() -> None:
    with pytest.raises(ValueError, match="unique"):
        q("aa", "x", [[1], [1]], [[1], [1]])
    with pytest.raises(ValueError, match="must both be"):
        q("a", "xy", [[1, 2]], [[1]])
    with pytest.raises(ValueError, match="finite"):
        q("a", "x", [[np.nan]], [[1]])
    with pytest.raises(ValueError, match="visits"):
        q("a", "x", [[1]], [[-1]])
    t = q("a", "x", [[1]], [[2]])
    assert t.values.dtype == np.float64 and t.cell("a", "x") == (1.0, 2.0)


def test_same_labels_hand_computed() -> None:
    own = q("ab", "xy", [[1.0, 2.0], [3.0, 4.0]], [[1, 0], [2, 2]])
    peer = q("ab", "xy", [[3.0, 5.0], [0.0, 4.0]], [[3, 4], [1, 0]])
    m = merge_qtables([own, peer])
    # (1*1 + 3*3)/4 = 2.5 ; (0*2 + 4*5)/4 = 5 ; (2*3 + 1*0)/3 = 2 ; (2*4 + 0*4)/2 = 4
    np.testing.assert_allclose(m.values, [[2.5, 5.0], [2.0, 4.0]])
    np.testing.assert_array_equal(m.visits, [[4, 4], [3, 2]])
    assert m.states == ("a", "b") and m.actions == ("x", "y")


def test_label_union_adds_unknown_states_and_actions() -> None:
    own = q("ab", "x", [[1.0], [2.0]], [[1], [1]])
    peer = q("cb", "yx", [[7.0, 8.0], [9.0, 4.0]], [[1, 1], [2, 3]])
    m = merge_qtables([own, peer])
    assert m.states == ("a", "b", "c") and m.actions == ("x", "y")
    assert m.cell("a", "x") == (1.0, 1.0)
    assert m.cell("b", "x") == pytest.approx(((1 * 2.0 + 3 * 4.0) / 4, 4.0))
    assert m.cell("b", "y") == (9.0, 2.0)
    assert m.cell("c", "x") == (8.0, 1.0)
    assert m.cell("c", "y") == (7.0, 1.0)
    assert m.cell("a", "y") == (0.0, 0.0)  # nobody visited: 0.0 by contract


def test_zero_visits_give_zero_and_empty_inputs() -> None:
    m = merge_qtables([q("a", "x", [[5.0]], [[0]]), q("a", "x", [[7.0]], [[0]])])
    assert m.cell("a", "x") == (0.0, 0.0)
    e = merge_qtables([])
    assert e.states == () and e.values.shape == (0, 0)
    assert merge_qtables([QTableValue.empty(), q("a", "x", [[2.0]], [[1]])]).cell("a", "x") == (2.0, 1.0)


def test_merge_is_order_independent_up_to_labels() -> None:
    rng = np.random.default_rng(0)
    ts = [q("abc", "xyz", rng.normal(size=(3, 3)).tolist(), rng.integers(0, 5, (3, 3)).tolist())]
    for _ in range(3):
        ts.append(q("cab", "zy", rng.normal(size=(3, 2)).tolist(), rng.integers(0, 5, (3, 2)).tolist()))
    a, b = merge_qtables(ts), merge_qtables(ts[::-1])
    for s in a.states:
        for x in a.actions:
            assert a.cell(s, x) == pytest.approx(b.cell(s, x))


def test_peer_tables_latest_replaces_and_counts_once() -> None:
    pt = PeerTables(q("a", "x", [[1.0]], [[10]]), max_peers=2)
    assert pt.update_peer("p", q("a", "x", [[3.0]], [[10]]), version=1)
    assert pt.merged().cell("a", "x") == (2.0, 20.0)
    # the same table republished, or an older version, changes nothing: no inflation
    assert not pt.update_peer("p", q("a", "x", [[3.0]], [[10]]), version=1)
    assert not pt.update_peer("p", q("a", "x", [[9.0]], [[99]]), version=0)
    assert pt.merged().cell("a", "x") == (2.0, 20.0)
    # a newer version replaces the old one (it already contains the old visits)
    assert pt.update_peer("p", q("a", "x", [[4.0]], [[30]]), version=2)
    assert pt.merged().cell("a", "x") == pytest.approx((3.25, 40.0))
    pt.set_own(q("a", "x", [[2.0]], [[10]]))
    assert pt.merged().cell("a", "x") == pytest.approx((3.5, 40.0))


def test_peer_tables_bounded_and_remove() -> None:
    pt = PeerTables(max_peers=2)
    for i, p in enumerate("abc"):
        pt.update_peer(p, q("s", "x", [[float(i)]], [[1]]), version=1)
    assert pt.peers() == ["b", "c"]
    pt.remove_peer("b")
    assert pt.merged().cell("s", "x") == (2.0, 1.0)
    assert pt.own.states == ()


def test_repeated_gossip_rounds_do_not_inflate_counts() -> None:
    """Three nodes gossip for many rounds; every merged view counts each node's visits exactly once."""
    own = {n: q("s", "x", [[float(i)]], [[i + 1.0]]) for i, n in enumerate("ABC")}
    views = {n: PeerTables(own[n]) for n in own}
    for rnd in range(20):
        for sender in own:
            for receiver in own:
                if sender != receiver:  # each publishes its OWN table, never the merged view
                    views[receiver].update_peer(sender, views[sender].own, version=rnd)
    for n in own:
        assert views[n].merged().cell("s", "x") == pytest.approx(((0 * 1 + 1 * 2 + 2 * 3) / 6, 6.0))

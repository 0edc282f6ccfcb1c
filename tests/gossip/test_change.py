"""Send on change: first send, threshold, keepalive, metrics over Q-tables and tensor maps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from metamesh.gossip.change import ChangeGate, copy_tensors, qtable_change, tensor_change
from metamesh.gossip.merge import QTableValue


def q(states: str, actions: str, values: list[list[float]]) -> QTableValue:
    v = np.array(values, dtype=float)
    return QTableValue(tuple(states), tuple(actions), v, np.ones_like(v))


def test_gate_first_threshold_keepalive() -> None:
    gate: ChangeGate[float] = ChangeGate(0.5, keepalive=10.0, metric=lambda a, b: abs(a - b))
    assert gate.last_sent_at is None
    assert gate.should_send(1.0, 0.0)  # the first call always sends
    gate.mark_sent(1.0, 0.0)
    assert gate.last_sent_at == 0.0
    assert not gate.should_send(1.5, 1.0)  # change 0.5 is not > 0.5
    assert gate.should_send(1.51, 1.0)
    assert not gate.should_send(1.2, 9.99)
    assert gate.should_send(1.0, 10.0)  # keepalive even without change
    gate.mark_sent(1.2, 10.0)
    assert not gate.should_send(1.0, 12.0) and gate.should_send(0.69, 12.0)
    assert gate.should_send(math.nan, 12.0)  # NaN metric counts as changed


def test_gate_validation() -> None:
    with pytest.raises(ValueError):
        ChangeGate(-1.0, 1.0, lambda a, b: 0.0)
    with pytest.raises(ValueError):
        ChangeGate(0.1, 0.0, lambda a, b: 0.0)


def test_gate_snapshot_protects_against_in_place_mutation() -> None:
    w = {"w": np.ones(4)}
    gate = ChangeGate(0.1, 60.0, tensor_change, snapshot=copy_tensors)
    gate.mark_sent(w, 0.0)
    w["w"] *= 2  # the learner mutates its arrays in place
    assert gate.should_send(w, 1.0)
    naive = ChangeGate(0.1, 60.0, tensor_change)
    naive.mark_sent(w, 0.0)
    w["w"] *= 2
    assert not naive.should_send(w, 1.0)  # why snapshot exists


def test_qtable_change_hand_computed() -> None:
    a = q("ab", "xy", [[1.0, 2.0], [3.0, 4.0]])
    b = q("ab", "xy", [[1.5, 2.0], [2.0, 4.25]])
    assert qtable_change(a, b) == 1.0
    assert qtable_change(a, a) == 0.0
    reordered = q("ba", "yx", [[4.25, 2.0], [2.0, 1.5]])  # b with rows and columns swapped
    assert qtable_change(a, reordered) == 1.0
    grown = q("abc", "xy", [[1.0, 2.0], [3.0, 4.0], [0.0, 0.0]])  # a new state: new cells
    assert qtable_change(a, grown) == math.inf
    assert qtable_change(a, q("ab", "xyz", [[1, 2, 0], [3, 4, 0]])) == math.inf
    assert qtable_change(QTableValue.empty(), QTableValue.empty()) == 0.0
    gate = ChangeGate(0.25, 100.0, qtable_change)
    gate.mark_sent(a, 0.0)
    assert not gate.should_send(q("ab", "xy", [[1.25, 2.0], [3.0, 4.0]]), 1.0)
    assert gate.should_send(b, 1.0) and gate.should_send(grown, 1.0)


def test_tensor_change_hand_computed() -> None:
    last = {"a": np.array([3.0, 0.0]), "b": np.array([[0.0, 4.0]], dtype=np.float32)}  # ||last|| = 5
    cur = {"a": np.array([3.0, 1.0]), "b": np.array([[0.0, 4.0]], dtype=np.float32)}  # ||diff|| = 1
    assert tensor_change(last, cur) == pytest.approx(0.2)
    cur2 = {"a": np.array([6.0, 0.0]), "b": np.array([[0.0, 8.0]], dtype=np.float32)}
    assert tensor_change(last, cur2) == pytest.approx(1.0)
    assert tensor_change(last, {"a": last["a"]}) == math.inf
    assert tensor_change(last, {"a": last["a"], "b": np.zeros((2, 1))}) == math.inf
    zero = {"a": np.zeros(2)}
    assert tensor_change(zero, {"a": np.array([1e-12, 0.0])}) == pytest.approx(1.0)
    assert tensor_change(zero, zero) == 0.0

"""The meta-engine: observations in, one versioned meta out, each update checked by hand."""

from __future__ import annotations

import msgpack
import numpy as np
import pytest

from metamesh.coordinator.engine import EngineConfig, MetaEngine
from metamesh.protocol import LAN, Delta, Insight, QTable, decode, encode
from metamesh.protocol.envelope import Envelope

W = "expert0.fc.weight"


def offset(value: float, samples: int = 10, base: int = 0, shape: tuple[int, ...] = (2,)) -> Delta:
    return Delta("experts", {W: np.full(shape, value, np.float32)}, base_version=base, samples=samples)


def insight(round_: int, loss0: float, avg: float, n0: int = 10) -> Insight:
    return Insight.of({"expert0": loss0, "expert1": 0.0}, {"expert0": n0, "expert1": 0}, avg_loss=avg,
                      total_samples=20, round=round_)  # fmt: skip


def qtable(category: str, actions: tuple[str, ...], values: list[float], visits: list[float]) -> QTable:
    return QTable((category,), actions, np.array([values]), np.array([visits]), episodes=1)


def test_reptile_moves_the_domain_init_halfway_to_the_sample_weighted_average() -> None:
    engine = MetaEngine(EngineConfig(reptile_step=0.5))
    engine.observe("a", "medical", offset(1.0, samples=30), at=0)
    engine.observe("b", "medical", offset(3.0, samples=10), at=0)
    assert engine.update()
    # Average offset (1*30 + 3*10) / 40 = 1.5; from 0, half a step: 0.75.
    meta = engine.meta(1)
    np.testing.assert_allclose(meta.tensors[f"medical:init.{W}"], [0.75, 0.75])
    assert meta.params["medical:init_base"] == 0 and meta.params["medical:init_steps"] == 1
    engine.observe("a", "medical", offset(1.5, samples=30), at=1)  # now both average 1.875
    engine.update()
    # 0.75 + 0.5 * (1.875 - 0.75) = 1.3125
    np.testing.assert_allclose(engine.meta(2).tensors[f"medical:init.{W}"], [1.3125, 1.3125])
    assert not engine.update()  # nothing new: nothing changes


def test_offsets_of_the_wrong_shape_or_model_are_rejected_and_counted() -> None:
    engine = MetaEngine()
    engine.observe("a", "medical", offset(1.0), at=0)
    engine.observe("b", "medical", offset(1.0, shape=(3,)), at=0)
    engine.observe(
        "c", "medical", Delta("other", {W: np.zeros(2, np.float32)}, base_version=0, samples=1), at=0
    )
    assert engine.rejected == {"tensor_shape": 1, "other_model": 1}
    assert set(engine.offsets["medical"]) == {"a"}


def test_learning_rates_rise_while_loss_falls_and_drop_when_it_turns() -> None:
    engine = MetaEngine(EngineConfig(base_lr=0.1, lr_bounds=(0.01, 0.5)))
    for r, (l0, avg) in enumerate([(1.0, 1.0), (0.8, 0.9), (0.6, 0.8), (0.5, 0.85)], start=1):
        for client in ("a", "b"):
            engine.observe(client, "medical", insight(r, l0, avg), at=r)
    assert engine.update()
    lrs = {k: v for k, v in engine.meta(1).params.items() if ":lr." in k}
    # expert0 fell at every step: 0.1 * 1.1. The gate's loss (avg) rose at the last step: 0.1 * 0.7.
    # expert1 routed nothing: no series, no rate.
    assert lrs == pytest.approx({"medical:lr.expert0": 0.11, "medical:lr.gate": 0.07})
    # The same rounds again change nothing: a rate moves once per round the clients reached.
    engine.observe("a", "medical", insight(4, 0.5, 0.85), at=5)
    assert not engine.update()


def test_a_round_counts_once_most_clients_reached_it() -> None:
    engine = MetaEngine()
    for r in range(1, 5):
        engine.observe("fast", "medical", insight(r, 1.0 / r, 1.0 / r), at=r)
    engine.observe("slow", "medical", insight(1, 1.0, 1.0), at=1)
    engine.observe("slower", "medical", insight(1, 1.0, 1.0), at=1)
    engine.update()
    assert engine.rates["medical"].adapted_at == 1 and engine.meta(1).params["medical:lr.expert0"] == 0.1


def test_priors_merge_rows_of_every_domain_by_visits_over_a_union_of_actions() -> None:
    engine = MetaEngine(EngineConfig(epsilon_start=0.3, epsilon_floor=0.02))
    engine.observe("a", "math", qtable("math", ("cot", "direct"), [8.0, 2.0], [3, 1]), at=0)
    engine.observe("b", "math", qtable("math", ("direct", "expert"), [4.0, 6.0], [3, 4]), at=0)
    assert engine.update()
    meta = engine.meta(1)
    assert meta.labels["actions"] == ("cot", "direct", "expert")
    values, visits = meta.tensors["prior.math"]
    # direct: (2*1 + 4*3) / 4 = 3.5
    np.testing.assert_allclose(values, [8.0, 3.5, 6.0])
    np.testing.assert_allclose(visits, [3, 4, 4])
    # gap 8 - 6 = 2, runner-up visits 4: 0.02 + 0.28 / (1 + 2 * 2) = 0.076
    assert meta.params["eps.math"] == pytest.approx(0.076)
    assert not engine.update()


def test_the_meta_body_survives_the_wire_and_the_state_survives_msgpack() -> None:
    engine = MetaEngine()
    engine.observe("a", "medical", offset(1.0), at=0)
    engine.observe("a", "medical", insight(1, 1.0, 1.0), at=0)
    engine.observe("a", "math", qtable("math", ("cot", "direct"), [8.0, 2.0], [3, 1]), at=0)
    engine.update()
    meta = engine.meta(7)
    env = decode(encode(Envelope("coord", 1, "_global", meta, created=0.0, hops=1)), LAN)
    assert env.body.version == 7 and set(env.body.tensors) == set(meta.tensors)
    state = msgpack.unpackb(msgpack.packb(_plain(engine.state())), strict_map_key=False)
    restored = MetaEngine()
    restored.load_state(state)
    assert len(restored.memory) == 1 and restored.meta(7).params == meta.params
    for name, t in meta.tensors.items():
        np.testing.assert_array_equal(restored.meta(7).tensors[name], t)
    with pytest.raises(ValueError):
        MetaEngine().load_state({"format": 1, "memory": state["memory"]})


def _plain(value: object) -> object:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.ndarray):
        return value.tolist()
    return value

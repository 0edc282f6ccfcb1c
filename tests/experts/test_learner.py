"""ExpertLearner mechanics: FedProx, frozen layers, DP deltas, merges, validation, checkpoints."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

pytest.importorskip("torch")

from metamesh.errors import ConfigError
from metamesh.learners.experts.data import NodeData, make_node_data
from metamesh.learners.experts.learner import ExpertConfig, ExpertLearner
from metamesh.learners.experts.privacy import PrivacyConfig, RDPAccountant

pytestmark = pytest.mark.torch


def data(node: int = 0, domain: str = "medical") -> NodeData:
    return make_node_data(domain, node, n_train=128, n_test=128, seed=4)


def learner(**kw: Any) -> ExpertLearner:
    node = kw.pop("node", 0)
    return ExpertLearner(data(node), ExpertConfig(**kw))


def dist(a: dict[str, np.ndarray], b: dict[str, np.ndarray], names: tuple[str, ...]) -> float:
    return math.sqrt(sum(float(np.sum((a[n] - b[n]) ** 2)) for n in names))


def test_parameter_names_are_stable() -> None:
    names = set(learner(n_experts=2).weights())
    expected = {f"expert{k}.{layer}.{kind}" for k in range(2) for layer in ("fc1", "fc2", "out")
                for kind in ("weight", "bias")} | {"gate.weight", "gate.bias"}  # fmt: skip
    assert names == expected


def test_same_init_seed_same_weights_and_training_is_deterministic() -> None:
    a, b = learner(seed=1), learner(seed=1)
    c = learner(seed=2, init_seed=5)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(w, b.weights()[name])
    assert any(not np.array_equal(w, c.weights()[n]) for n, w in a.weights().items())
    ra, rb = a.train_round(), b.train_round()
    assert ra.train_loss == rb.train_loss and ra.heldout_loss == rb.heldout_loss
    assert ra.steps == 2 * 2 and ra.samples == 128 and ra.round == 1


def test_fedprox_keeps_local_weights_closer_to_the_base() -> None:
    plain, prox = learner(fedprox_mu=0.0, lr=0.05), learner(fedprox_mu=5.0, lr=0.05)
    base = plain.weights()
    for _ in range(3):
        plain.train_round()
        prox.train_round()
    names = plain.trainable
    d_plain, d_prox = dist(plain.weights(), base, names), dist(prox.weights(), base, names)
    assert d_prox < 0.8 * d_plain


def test_frozen_tensors_never_change_and_are_never_shared() -> None:
    lrn = learner(frozen=("expert0.fc1", "gate"))
    frozen = [n for n in lrn.weights() if n.startswith(("expert0.fc1.", "gate."))]
    assert len(frozen) == 4 and not set(frozen) & set(lrn.trainable)
    assert "expert1.fc1.weight" in lrn.trainable and "expert0.fc2.weight" in lrn.trainable
    before = lrn.weights()
    lrn.train_round()
    d = lrn.delta()
    assert set(d.tensors) == set(lrn.trainable)
    lrn.apply_average(d.tensors, new_version=1, contributors=["me"], now=1.0)
    lrn.train_round()
    after = lrn.weights()
    for name in frozen:
        np.testing.assert_array_equal(after[name], before[name])
    assert any(not np.array_equal(after[n], before[n]) for n in lrn.trainable)
    with pytest.raises(ValueError, match="frozen"):
        lrn.apply_average({**d.tensors, "gate.bias": np.zeros(4, np.float32)}, new_version=2,
                          contributors=[], now=2.0)  # fmt: skip


def test_frozen_prefixes_match_on_dot_boundaries() -> None:
    lrn = learner(n_experts=12, frozen=("expert1",))
    assert "expert10.fc1.weight" in lrn.trainable and "expert1.fc1.weight" not in lrn.trainable
    with pytest.raises(ConfigError, match="matches no parameter"):
        learner(frozen=("expert9",))
    with pytest.raises(ConfigError, match="nothing to train"):
        learner(n_experts=1, frozen=("expert0", "gate"))


def test_delta_is_current_minus_base_and_float32() -> None:
    lrn = learner()
    base = lrn.weights()
    lrn.train_round()
    d = lrn.delta()
    now = lrn.weights()
    assert d.base_version == 0 and d.samples == 128 and d.clip_norm is None and d.noise_multiplier is None
    for name, t in d.tensors.items():
        assert t.dtype == np.float32 and t.flags.c_contiguous
        np.testing.assert_allclose(t, now[name] - base[name], atol=1e-7)


def test_private_delta_is_clipped_before_noise() -> None:
    lrn = learner(lr=0.05, privacy=PrivacyConfig(clip_norm=0.1, noise_multiplier=0.0))
    lrn.train_round()
    raw = dist(lrn.weights(), lrn.state()["base"], lrn.trainable)
    assert raw > 0.1  # the update really needed clipping
    d = lrn.delta()
    norm = math.sqrt(sum(float(np.sum(t.astype(np.float64) ** 2)) for t in d.tensors.values()))
    assert norm == pytest.approx(0.1, rel=1e-4)
    assert d.clip_norm == 0.1 and d.noise_multiplier == 0.0


def test_private_delta_noise_has_std_sigma_times_clip() -> None:
    lrn = learner(privacy=PrivacyConfig(clip_norm=0.5, noise_multiplier=1.2), seed=3)
    d = lrn.delta()  # no training: the update is zero, what we see is the noise
    flat = np.concatenate([t.ravel() for t in d.tensors.values()])
    assert flat.size > 5000
    assert flat.std() == pytest.approx(1.2 * 0.5, rel=0.03)
    assert abs(flat.mean()) < 0.03


def test_accountant_epsilon_matches_closed_form_after_releases() -> None:
    sigma, delta = 1.5, 1e-5
    lrn = learner(privacy=PrivacyConfig(clip_norm=1.0, noise_multiplier=sigma, delta=delta))
    assert lrn.epsilon() == 0.0
    eps = []
    for _ in range(5):
        lrn.delta()
        eps.append(lrn.epsilon())
    orders = RDPAccountant().orders
    expected = min(5 * a / (2 * sigma**2) + math.log(1 / delta) / (a - 1) for a in orders)
    assert eps[-1] == pytest.approx(expected, rel=1e-12)
    assert eps == sorted(eps)
    assert lrn.insight().metrics["epsilon"] == pytest.approx(expected)


def test_apply_average_moves_model_and_base_and_records_history() -> None:
    lrn = learner()
    base = lrn.weights()
    lrn.train_round()
    avg = {n: np.full_like(base[n], 0.01) for n in lrn.trainable}
    rec = lrn.apply_average(avg, new_version=3, contributors=["a", "b"], now=12.5)
    for name in lrn.trainable:
        np.testing.assert_allclose(lrn.weights()[name], base[name] + 0.01, atol=1e-6)
    assert lrn.version == 3 and lrn.delta().base_version == 3
    assert all(not np.any(t) for t in lrn.delta().tensors.values())  # model == base right after a merge
    assert rec.version == 3 and rec.base_version == 0 and rec.contributors == ("a", "b") and rec.at == 12.5
    assert rec.loss_after == pytest.approx(lrn.heldout_loss())
    assert lrn.history.latest == rec
    with pytest.raises(ValueError, match="must exceed"):
        lrn.apply_average(avg, new_version=3, contributors=[], now=13.0)


def test_a_merge_that_overflows_the_model_is_undone() -> None:
    lrn = learner()
    lrn.train_round()
    before = lrn.weights()
    avg = {n: np.full_like(before[n], 1e30) for n in lrn.trainable}  # finite, but the predictions overflow
    with pytest.raises(ValueError, match="held-out loss is inf"):
        lrn.apply_average(avg, new_version=1, contributors=["a"], now=0.0)
    for name, w in lrn.weights().items():
        np.testing.assert_array_equal(w, before[name])
    assert lrn.version == 0 and len(lrn.history) == 0
    assert any(np.any(t) for t in lrn.delta().tensors.values())  # the local training since the base is kept


def test_a_round_that_diverges_is_undone_back_to_the_base() -> None:
    lrn = learner(lr=1e25)
    base = lrn.weights()
    report = lrn.train_round()
    assert report.diverged and report.skipped_steps > 0
    assert math.isfinite(report.heldout_loss) and report.heldout_loss == lrn.heldout_loss()
    for name, w in lrn.weights().items():
        np.testing.assert_array_equal(w, base[name])
    lrn.set_learning_rates(dict.fromkeys(lrn.learning_rates(), 0.05))
    healthy = lrn.train_round()
    assert not healthy.diverged and healthy.skipped_steps == 0
    assert healthy.heldout_loss < report.heldout_loss


@pytest.mark.parametrize(
    ("change", "match"),
    [
        (lambda t: t.pop("gate.weight"), "missing"),
        (lambda t: t.update({"expert9.fc1.weight": np.zeros(1, np.float32)}), "unexpected"),
        (lambda t: t.update({"gate.bias": np.zeros(5, np.float32)}), "shape"),
        (lambda t: t.update({"gate.bias": np.full(4, np.nan, np.float32)}), "finite"),
    ],
)
def test_bad_incoming_tensors_raise_and_change_nothing(change: Any, match: str) -> None:
    lrn = learner()
    before = lrn.weights()
    tensors = {n: np.zeros_like(w) for n, w in before.items()}
    change(tensors)
    with pytest.raises(ValueError, match=match):
        lrn.apply_average(tensors, new_version=1, contributors=[], now=0.0)
    with pytest.raises(ValueError, match=match):
        lrn.set_weights(tensors)
    for name, w in lrn.weights().items():
        np.testing.assert_array_equal(w, before[name])
    assert lrn.version == 0


def test_set_weights_adopts_model_base_and_version() -> None:
    src, dst = learner(), learner(init_seed=9, node=1)
    src.train_round()
    dst.set_weights(src.weights(), version=7)
    for name, w in src.weights().items():
        np.testing.assert_array_equal(dst.weights()[name], w)
    assert dst.version == 7 and all(not np.any(t) for t in dst.delta().tensors.values())
    dst.set_weights({"gate.bias": np.ones(4, np.float32)}, strict=False)
    np.testing.assert_array_equal(dst.weights()["gate.bias"], np.ones(4))


def test_set_learning_rates() -> None:
    lrn = learner()
    lrn.set_learning_rates({"expert0": 0.001, "gate": 0.5})
    rates = lrn.state()["lrs"]
    assert rates["expert0"] == 0.001 and rates["gate"] == 0.5 and rates["expert1"] == ExpertConfig().lr
    with pytest.raises(ValueError, match="unknown"):
        lrn.set_learning_rates({"expert7": 0.1})
    with pytest.raises(ValueError, match="positive"):
        lrn.set_learning_rates({"expert0": -1.0})
    frozen_lr = learner(lr=0.05, frozen=("expert1",))
    frozen_lr.set_learning_rates({"expert0": 0.0001, "expert2": 0.0001, "expert3": 0.0001, "gate": 0.0001})
    before = frozen_lr.weights()
    frozen_lr.train_round()
    slow = dist(frozen_lr.weights(), before, frozen_lr.trainable)
    fast = learner(lr=0.05, frozen=("expert1",))
    fast.train_round()
    assert slow < 0.1 * dist(fast.weights(), before, fast.trainable)


def test_insight_counts_every_sample_once() -> None:
    lrn = learner()
    lrn.train_round()
    ins = lrn.insight()
    assert set(ins.expert_loss) == {"expert0", "expert1", "expert2", "expert3"}
    assert sum(ins.expert_samples.values()) == ins.total_samples == 128
    weighted = sum(ins.expert_loss[e] * ins.expert_samples[e] for e in ins.expert_loss) / 128
    assert weighted == pytest.approx(ins.avg_loss, rel=1e-5)
    assert ins.domain == "medical" and "epsilon" not in ins.metrics
    assert ins.metrics["heldout_loss"] == pytest.approx(lrn.heldout_loss())
    assert lrn.affinity() == {"medical": 1.0}


def test_checkpoint_round_trip_restores_everything() -> None:
    priv = PrivacyConfig(clip_norm=1.0, noise_multiplier=1.0)
    a = learner(privacy=priv, seed=5)
    a.train_round()
    a.apply_average(a.delta().tensors, new_version=1, contributors=["a"], now=1.0)
    a.train_round()
    a.set_learning_rates({"gate": 0.003})
    state = a.state()
    b = learner(privacy=priv, seed=99, init_seed=42)
    b.load_state(state)
    for name, w in a.weights().items():
        np.testing.assert_array_equal(b.weights()[name], w)
    assert b.version == 1 and b.rounds == 2 and b.epsilon() == a.epsilon() > 0
    assert list(b.history) == list(a.history)
    # Same rng, optimizer and base: both continue identically.
    ra, rb = a.train_round(), b.train_round()
    assert ra.train_loss == rb.train_loss
    da, db = a.delta(), b.delta()
    for name, t in da.tensors.items():
        np.testing.assert_array_equal(db.tensors[name], t)
    assert a.epsilon() == b.epsilon()


def test_checkpoint_fits_msgpack() -> None:
    msgpack = pytest.importorskip("msgpack")
    lrn = learner(privacy=PrivacyConfig(clip_norm=1.0, noise_multiplier=1.0))
    lrn.train_round()
    lrn.delta()

    def enc(obj: Any) -> Any:
        if isinstance(obj, np.ndarray):
            return {"__nd__": True, "dtype": obj.dtype.str, "shape": list(obj.shape), "data": obj.tobytes()}
        raise TypeError(type(obj))

    def dec(obj: dict[str, Any]) -> Any:
        if obj.get("__nd__"):
            return np.frombuffer(obj["data"], dtype=obj["dtype"]).reshape(obj["shape"])
        return obj

    state = msgpack.unpackb(msgpack.packb(lrn.state(), default=enc), object_hook=dec, strict_map_key=False)
    other = learner()
    other.load_state(state)
    assert other.heldout_loss() == lrn.heldout_loss()


@pytest.mark.parametrize(
    "corrupt",
    [
        lambda s: s.pop("rng"),
        lambda s: s.update(format=99),
        lambda s: s.update(shape=[8, 2, 32]),
        lambda s: s["weights"].pop("gate.bias"),
        lambda s: s.update(accountant={"orders": []}),
    ],
)
def test_load_state_rejects_malformed_state(corrupt: Any) -> None:
    lrn = learner()
    state = lrn.state()
    corrupt(state)
    with pytest.raises(ValueError):
        learner().load_state(state)


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(n_experts=0),
        dict(lr=0.0),
        dict(lr=math.inf),
        dict(fedprox_mu=-1.0),
        dict(frozen="gate"),
        dict(batch_size=0),
        dict(threads=0),
    ],
)
def test_bad_config_raises_config_error(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigError):
        ExpertConfig(**kwargs)


def test_bad_data_raises_config_error() -> None:
    good = data()
    bad = [
        NodeData(good.x_train, good.y_train[:-1], good.x_test, good.y_test, "medical"),
        NodeData(good.x_train, good.y_train, good.x_test[:, :3], good.y_test, "medical"),
        NodeData(good.x_train[:0], good.y_train[:0], good.x_test, good.y_test, "medical"),
        NodeData(good.x_train * np.nan, good.y_train, good.x_test, good.y_test, "medical"),
    ]
    for d in bad:
        with pytest.raises(ConfigError):
            ExpertLearner(d)

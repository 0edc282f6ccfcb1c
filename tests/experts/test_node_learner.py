"""The experts learner inside a node: offsets from w0, averaging, adoption, rejections, checkpoints.

Learners exchange what ``share()`` returns through a plain in-memory bus (the node's
job); the socket path is covered by the multi-process tests.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import numpy as np
import pytest

pytest.importorskip("torch")

from metamesh.errors import Reason
from metamesh.learners.experts.data import make_node_data
from metamesh.learners.experts.learner import ExpertConfig, ExpertLearner
from metamesh.learners.experts.node_learner import MODEL_NAME, ExpertNodeConfig, ExpertNodeLearner
from metamesh.learners.experts.privacy import PrivacyConfig, RDPAccountant, clip_update
from metamesh.protocol import Delta, Insight, Meta

pytestmark = [pytest.mark.torch, pytest.mark.timeout(120)]


def node(
    domain: str = "medical",
    part: int = 0,
    *,
    exchange: str | None = None,
    federated: bool = True,
    rounds: int = 0,
    **cfg: object,
) -> ExpertNodeLearner:
    data = make_node_data(domain, part, n_train=128, n_test=256, seed=0)
    learner = ExpertLearner(data, ExpertConfig(seed=part, init_seed=0, **cfg))  # type: ignore[arg-type]
    return ExpertNodeLearner(
        learner, ExpertNodeConfig(exchange_domain=exchange or domain, federated=federated, rounds=rounds)
    )


def run(group: Sequence[ExpertNodeLearner], rounds: int, listeners: Sequence[ExpertNodeLearner] = ()) -> None:
    """Each learner steps in turn; what it shares reaches every other one (and the listeners) at once."""

    async def go() -> None:
        for _ in range(rounds):
            for i, lrn in enumerate(group):
                await lrn.step()
                for domain, body in lrn.share():
                    for other in [*group, *listeners]:
                        if other is not lrn:
                            other.merge(f"n{i}", domain, body)

    asyncio.run(go())


def test_shares_an_insight_and_an_offset_from_w0_each_round() -> None:
    lrn = node()
    asyncio.run(lrn.step())
    shares = lrn.share()
    kinds = {type(b): (d, b) for d, b in shares}
    assert set(kinds) == {Insight, Delta}
    domain, delta = kinds[Delta]
    assert isinstance(delta, Delta) and domain == "medical" and delta.model == MODEL_NAME
    assert delta.base_version == 0 and delta.round == 1 and delta.samples == 128
    # Without merges yet the offset is exactly the locally trained weights minus w0.
    w0 = node().learner.weights()
    now = lrn.learner.weights()
    for name, t in delta.tensors.items():
        assert t.dtype == np.float32
        np.testing.assert_allclose(t, now[name] - w0[name], atol=1e-6)
    assert lrn.share() == []  # handed out once


def test_domain_peers_converge_on_one_model_and_beat_training_alone() -> None:
    group = [node(part=i) for i in range(4)]
    alone = [node(part=i, federated=False) for i in range(4)]
    run(group, 6)
    run(alone, 6)
    fed = np.mean([g.learner.heldout_loss() for g in group])
    solo = np.mean([a.learner.heldout_loss() for a in alone])
    assert fed < 0.6 * solo, (fed, solo)
    assert all(g.merges >= 5 for g in group)
    assert all(a.merges == 0 and a.share() == [] for a in alone)


def test_a_late_joiner_adopts_the_domain_model_before_training() -> None:
    veterans = [node(part=i) for i in range(3)]
    run(veterans, 6)
    joiner, isolated = node(part=3), node(part=3, federated=False)
    run(veterans, 1, listeners=[joiner])  # the latest offsets, as the joiner's snapshot brings them
    asyncio.run(joiner.step())
    asyncio.run(isolated.step())
    events = dict(joiner.drain_events())
    assert "adopted" in events and len(events["adopted"]["from"]) == 3
    assert joiner.learner.heldout_loss() < 0.6 * isolated.learner.heldout_loss()


@pytest.mark.parametrize(
    ("change", "reason", "charged"),
    [
        ({"domain": "economic"}, "other_domain", None),
        ({"model": "policy"}, Reason.OTHER_MODEL.value, None),  # counted, not charged
        ({"base_version": 3}, "other_base", None),
        ({"samples": 0}, "bad_samples", Reason.INSANE_VALUES.value),
        ({"drop": "gate.bias"}, "tensor_names", Reason.SHAPE_MISMATCH.value),
        ({"shape": "gate.bias"}, "tensor_shape", Reason.SHAPE_MISMATCH.value),
        ({"dtype": "gate.bias"}, "tensor_shape", Reason.SHAPE_MISMATCH.value),
    ],
)
def test_mismatched_offsets_are_counted_and_ignored(
    change: dict[str, object], reason: str, charged: str | None
) -> None:
    sender, receiver = node(), node(part=1)
    asyncio.run(sender.step())
    delta = next(b for _, b in sender.share() if isinstance(b, Delta))
    tensors = dict(delta.tensors)
    if "drop" in change:
        del tensors[str(change["drop"])]
    if "shape" in change:
        tensors[str(change["shape"])] = np.zeros(99, np.float32)
    if "dtype" in change:
        name = str(change["dtype"])
        tensors[name] = tensors[name].astype(np.float64)
    bad = Delta(
        model=str(change.get("model", delta.model)),
        tensors=tensors,
        base_version=int(change.get("base_version", 0)),  # type: ignore[call-overload]
        samples=int(change.get("samples", 128)),  # type: ignore[call-overload]
    )
    domain = str(change.get("domain", "medical"))
    assert receiver.validate("n0", domain, bad) == charged  # PROTOCOL.md section 6 codes
    receiver.rejected.clear()
    receiver.merge("n0", domain, bad)
    assert receiver.rejected == {reason: 1}
    assert list(receiver.drain_blame()) == ([("n0", charged)] if charged else [])
    before = receiver.learner.weights()
    asyncio.run(receiver.step())
    assert receiver.merges == 0  # nothing to merge with
    assert any(not np.array_equal(w, before[n]) for n, w in receiver.learner.weights().items())


def test_an_outlier_offset_is_left_out_of_the_average() -> None:
    group = [node(part=i) for i in range(4)]
    run(group, 2)
    target = group[0]
    asyncio.run(group[1].step())
    delta = next(b for _, b in group[1].share() if isinstance(b, Delta))
    huge = Delta(model=MODEL_NAME, tensors={k: v * 1e3 for k, v in delta.tensors.items()}, base_version=0,
                 samples=128)  # fmt: skip
    target.merge("n1", "medical", huge)
    asyncio.run(target.step())
    assert target.rejected["outlier"] == 1
    assert target.learner.heldout_loss() < 2.0


def test_a_merge_that_overflows_the_model_is_undone_and_the_node_goes_on() -> None:
    """Defences off (no norm bound): plain averaging takes in a finite offset so large that the
    merged model's predictions overflow. The node refuses that model, counts it, and trains on."""
    data = make_node_data("medical", 0, n_train=128, n_test=256, seed=0)
    target = ExpertNodeLearner(ExpertLearner(data, ExpertConfig(seed=0, init_seed=0)),
                               ExpertNodeConfig(exchange_domain="medical", norm_factor=None))  # fmt: skip
    asyncio.run(target.step())
    weights = target.learner.weights()
    tensors = {n: np.full_like(weights[n], 1e30) for n in target.learner.trainable}
    huge = Delta(model=MODEL_NAME, tensors=tensors, base_version=0, samples=128)
    target.merge("n1", "medical", huge)
    loss = target.learner.heldout_loss()
    asyncio.run(target.step())
    assert target.rejected == {"merge_undone": 1} and target.merges == 0
    assert target.learner.version == 0 and target.learner.heldout_loss() < loss  # it trained on
    assert "merge_undone" in [name for name, _ in target.drain_events()]


def test_frozen_tensors_never_go_on_the_wire() -> None:
    lrn = node(frozen=("gate", "expert0"))
    run([lrn], 2)
    asyncio.run(lrn.step())
    delta = next(b for _, b in lrn.share() if isinstance(b, Delta))
    assert delta.tensors and not any(n.startswith(("gate.", "expert0.")) for n in delta.tensors)


def test_private_offsets_carry_calibrated_noise_and_the_accountants_epsilon() -> None:
    privacy = PrivacyConfig(clip_norm=0.1, noise_multiplier=1.0)
    private = node(privacy=privacy)
    w0 = node().learner.weights()
    run([private], 2)
    asyncio.run(private.step())
    dp = next(x for _, x in private.share() if isinstance(x, Delta))
    assert dp.clip_norm == 0.1 and dp.noise_multiplier == 1.0
    # Never merged, so the base is w0 and the offset is the clipped update plus noise.
    update = {n: w - w0[n] for n, w in private.learner.weights().items() if n in dp.tensors}
    clipped, _ = clip_update(update, 0.1)
    noise = np.concatenate([(dp.tensors[n] - clipped[n]).ravel() for n in dp.tensors])
    assert 0.09 < float(noise.std()) < 0.11 and abs(float(noise.mean())) < 0.01
    expected = RDPAccountant()
    for _ in range(3):
        expected.step(noise_multiplier=1.0, sample_rate=1.0)
    assert private.summary()["epsilon"] == pytest.approx(expected.epsilon(1e-5), abs=1e-4)


def test_meta_learning_rates_apply_to_the_own_domain_only() -> None:
    lrn = node()
    lrn.apply_meta(Meta(version=1, target="economic", params={"lr.expert0": 0.5}))
    assert lrn.learner.state()["lrs"]["expert0"] == pytest.approx(0.1)
    lrn.apply_meta(Meta(version=2, target="medical", params={"lr.expert0": 0.5, "lr.gate": 0.01}))
    assert lrn.learner.state()["lrs"]["expert0"] == pytest.approx(0.5)
    lrn.apply_meta(Meta(version=3, params={"lr.nobody": 0.5}))
    assert lrn.rejected["meta"] == 1


def test_checkpoint_round_trip_resumes_the_same_model() -> None:
    group = [node(part=i) for i in range(2)]
    run(group, 3)
    saved = group[0].state()
    fresh = node(part=0)
    fresh.load_state(saved)
    assert fresh.learner.version == group[0].learner.version and fresh.merges == group[0].merges
    for name, w in group[0].learner.weights().items():
        np.testing.assert_array_equal(w, fresh.learner.weights()[name])
    broken = node(part=0)
    broken.load_state({"w0": {"gate.bias": np.zeros(1)}, "learner": {}})  # logged, ignored
    assert broken.learner.rounds == 0

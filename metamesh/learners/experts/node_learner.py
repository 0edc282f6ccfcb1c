"""The experts learner as a node sees it: train, share an offset, average the domain's offsets.

Decentralised FedAvg without a shared round clock. Every member of a domain
starts from the same initial weights ``w0`` (``init_seed``, or a
coordinator's initial weights), which are version ``base_version`` of the
domain. After each local round a node publishes its model as an *offset
from w0*: ``(base - w0) + delta``, where ``delta`` is the learner's
(clipped, noised) update since its last merge. Offsets from one ``w0`` can be
averaged by anyone, whatever each member merged before, so nodes never need
to agree on a round or on each other's bases, and a late joiner or a node
that missed messages is pulled to the domain's model by its next merge.

Privacy: ``base - w0`` is a function of offsets already published, so
adding it to the noised delta is post-processing, and every round costs
exactly one accounted release, as in DP-FedAvg.

The merge after each round is ``base := w0 + aggregate(own, peers)``, with
the node's own (un-noised) offset and the freshest offset of each domain
peer, older ones discounted by staleness (rounds of this node since the
offset arrived) and dropped after ``max_staleness``. The aggregation rule,
the outlier norm bound and the discount come from
:mod:`metamesh.gossip.merge.delta`. A node that has not trained yet and
already holds peers' offsets (from the snapshot it gets on joining) adopts
their average first: a late joiner starts from the domain's model.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from metamesh.gossip.merge.delta import Update, aggregate
from metamesh.node.learner import Learner
from metamesh.protocol import Body, Delta, Insight, Meta

from .checks import BLAME, PeerOffset, check_offset
from .federation import MODEL_NAME, DeltaTrainer, ExpertNodeConfig
from .guards import DivergenceGuard, EarlyStop
from .meta import read_meta
from .poison import poisoned
from .report import insight_body

__all__ = ["MODEL_NAME", "DeltaTrainer", "ExpertNodeConfig", "ExpertNodeLearner"]

log = logging.getLogger(__name__)


class ExpertNodeLearner(Learner):
    """Plugs a :class:`DeltaTrainer` (an ``ExpertLearner``) into a node (the ``Learner`` protocol).

    ``validation_loss`` (the model's loss on a validation split of the node's own
    training data) turns on early stopping; ``config.diverge_factor`` the
    divergence guard (:mod:`.guards`).
    """

    publishes = frozenset({"insight", "delta"})
    accepts = frozenset({"insight", "delta"})

    def __init__(
        self,
        learner: DeltaTrainer,
        config: ExpertNodeConfig,
        *,
        validation_loss: Callable[[], float] | None = None,
    ) -> None:
        self.learner = learner
        self.config = config
        self.name = config.model_name
        self._w0 = {n: w for n, w in learner.weights().items() if n in learner.trainable}
        self._w0_version = 0
        self._shapes = {n: w.shape for n, w in self._w0.items()}
        self._peers: dict[str, PeerOffset] = {}
        self._pending: list[tuple[str, Body]] = []
        self._events: list[tuple[str, dict[str, Any]]] = []
        self._blame: list[tuple[str, str]] = []
        self.rejected: Counter[str] = Counter()
        self.peer_insights: dict[str, float] = {}
        self.done = False
        self.merges = 0
        self._meta_init: tuple[int, dict[str, np.ndarray]] | None = None
        self._last = {"heldout_loss": learner.heldout_loss(), "train_loss": math.nan}
        self.stop = EarlyStop(validation_loss) if validation_loss is not None else None
        self.guard = (
            DivergenceGuard(learner.insight().avg_loss, config.diverge_factor, self._w0)
            if config.diverge_factor
            else None
        )

    # -- the Learner protocol ------------------------------------------------

    async def step(self) -> None:
        if self.done:
            await asyncio.sleep(0.1)  # finished: keep gossiping, stop training
            return
        peers = self._fresh_peers()
        if self.federating and self.learner.rounds == 0 and peers:
            await asyncio.to_thread(self._adopt, peers)
        elif self.learner.rounds == 0 and self._meta_init is not None:
            await asyncio.to_thread(self._start_from_meta, *self._meta_init)
        self._meta_init = None
        report = await asyncio.to_thread(self.learner.train_round)
        if report.diverged:
            self._events.append(("diverged", {"round": report.round, "skipped_steps": report.skipped_steps}))
        offset = await asyncio.to_thread(self._shared_offset) if self.federating else None
        merged_from: list[str] = []
        if self.federating and peers:
            merged_from = await asyncio.to_thread(self._merge, peers)
        insight = self.learner.insight()
        self._last = {"heldout_loss": insight.metrics["heldout_loss"], "train_loss": report.train_loss}
        self._pending.append((self.learner.domain, insight_body(insight, self.learner.rounds)))
        if offset is not None:
            self._pending.append((self.config.exchange_domain, offset))
        fields: dict[str, Any] = {
            "round": self.learner.rounds,
            "version": self.learner.version,
            "train_loss": round(report.train_loss, 5),
            "heldout_loss": round(self._last["heldout_loss"], 5),
            "merged": len(merged_from),
            "seconds": round(report.seconds, 4),
        }
        if self.learner.config.privacy is not None:
            fields["epsilon"] = round(self.learner.epsilon(), 4)
        self._events.append(("round", fields))
        await asyncio.to_thread(self._watch, insight.avg_loss, fields)
        if self.config.rounds and self.learner.rounds >= self.config.rounds:
            self.done = True
            if self.stop is not None and self.stop.best_weights:
                await asyncio.to_thread(self._go_back, self.stop.best_weights, "early_stop")
                last, best = fields["heldout_loss"], round(self.stop.best_heldout, 5)
                fields = {**fields, "heldout_loss": best, "stopped_round": self.stop.best_round,
                          "last_heldout_loss": last}  # fmt: skip
            self._events.append(("done", {**fields, "rejected": dict(self.rejected)}))

    @property
    def federating(self) -> bool:
        """Sharing and merging offsets: federated, and the divergence guard has not tripped."""
        return self.config.federated and not (self.guard is not None and self.guard.tripped)

    def _watch(self, train_loss: float, fields: Mapping[str, Any]) -> None:
        """After a round: early stopping's best round, and the divergence guard."""
        if self.stop is not None:
            self.stop.observe(self.learner.rounds, self._trainable_weights(), self._last["heldout_loss"])
        if self.guard is None or not self.guard.observe(train_loss, self._trainable_weights()):
            return
        event = self.guard.event(self.learner.rounds, fields.get("epsilon"), train_loss)
        log.warning("private learning diverged at round %d (epsilon %s): training loss %s above %.3g",
                    self.learner.rounds, event["epsilon"], event["train_loss"], self.guard.limit)  # fmt: skip
        self._go_back(self.guard.best_weights, "fallback")
        self._peers.clear()
        self._events.append(("dp_diverged", event))

    def _trainable_weights(self) -> dict[str, np.ndarray]:
        return {n: w for n, w in self.learner.weights().items() if n in self._w0}

    def _go_back(self, weights: Mapping[str, np.ndarray], why: str) -> None:
        """``weights`` (trainable) become the model, with fresh momentum when the learner can reset it."""
        reset = getattr(self.learner, "set_weights", None)
        if reset is not None:
            reset(weights, strict=False)
            self._events.append((why, {"round": self.learner.rounds}))
        elif not self._move_base({n: weights[n] - w0 for n, w0 in self._w0.items()}, [why]):
            return
        self._last["heldout_loss"] = self.learner.heldout_loss()

    def share(self) -> list[tuple[str, Body]]:
        out, self._pending = self._pending, []
        return out

    def validate(self, sender: str, domain: str, body: Body) -> str | None:
        """An offset malformed for this model is refused (not kept, not relayed, charged); one
        for another model, base or domain is fine traffic for other nodes, just not merged here."""
        if not isinstance(body, Delta) or not self.config.federated:
            return None
        problem = self._check(domain, body)
        if problem in BLAME:
            self.rejected[problem] += 1
            return BLAME[problem]
        return None

    def merge(self, sender: str, domain: str, body: Body) -> None:
        if isinstance(body, Insight):
            self.peer_insights[sender] = body.avg_loss
            return
        if not isinstance(body, Delta) or not self.federating:
            return
        problem = self._check(domain, body)
        if problem:
            self.rejected[problem] += 1
            if problem in BLAME:
                self._blame.append((sender, BLAME[problem]))
            log.debug("offset from %s rejected: %s", sender, problem)
            return
        self._peers[sender] = PeerOffset(body.tensors, body.samples, self.learner.rounds)

    def apply_meta(self, meta: Meta) -> None:
        """A coordinator's learning rates for this data's domain, and initial weights for the exchange
        domain (:func:`.meta.read_meta`); a node that has not trained yet starts from the weights (unless
        domain peers' offsets are at hand, which are fresher)."""
        reading = read_meta(meta, domain=self.learner.domain, exchange=self.config.exchange_domain,
                            known_rates=self.learner.learning_rates(), w0_version=self._w0_version,
                            shapes=self._shapes, trained=self.learner.rounds > 0)  # fmt: skip
        if reading.unknown:
            self.rejected["meta"] += 1
            log.warning("meta-parameters v%d: no learning-rate groups %s here", meta.version, reading.unknown)
        if reading.rates:
            try:
                self.learner.set_learning_rates(reading.rates)
            except ValueError as exc:
                self.rejected["meta"] += 1
                log.warning("meta-parameters v%d not applied: %s", meta.version, exc)
                return
            self._events.append(("meta_applied", {"version": meta.version, "lrs": dict(reading.rates)}))
        if reading.problem:
            self.rejected[reading.problem] += 1
        elif reading.init is not None:
            self._meta_init = (meta.version, reading.init)

    def affinity(self) -> Mapping[str, float]:
        shares = dict(self.learner.affinity())
        if self.config.exchange_domain not in shares:
            shares[self.config.exchange_domain] = 1.0
        return shares

    def summary(self) -> Mapping[str, float]:
        rounds, version = float(self.learner.rounds), float(self.learner.version)
        out = {"rounds": rounds, "episodes": rounds, "version": version,
               "heldout_loss": round(self._last["heldout_loss"], 5), "peers": float(len(self._peers)),
               "merges": float(self.merges), "rejected": float(sum(self.rejected.values())),
               "done": float(self.done)}  # fmt: skip
        if self.learner.config.privacy is not None:
            eps = self.learner.epsilon()
            if math.isfinite(eps):
                out["epsilon"] = round(eps, 4)
        return out

    def drain_events(self) -> list[tuple[str, dict[str, Any]]]:
        out, self._events = self._events, []
        return out

    def drain_blame(self) -> list[tuple[str, str]]:  # refused as invalid or outliers, and why (PROTOCOL.md 6)
        out, self._blame = self._blame, []
        return out

    def state(self) -> dict[str, Any]:
        return {
            "learner": self.learner.state(),
            "w0": dict(self._w0),
            "w0_version": self._w0_version,
            "merges": self.merges,
            "done": self.done,
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        try:
            w0 = {str(k): np.asarray(v, dtype=np.float32) for k, v in state["w0"].items()}
            if {k: v.shape for k, v in w0.items()} != self._shapes:
                raise ValueError("initial weights do not match the model")
            self.learner.load_state(state["learner"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            log.warning("experts checkpoint not restored (%s); starting fresh", exc)
            return
        self._w0, self._w0_version = w0, int(state.get("w0_version", 0))
        self.merges = int(state.get("merges", 0))
        self.done = bool(state.get("done", False)) and bool(self.config.rounds)
        self._last["heldout_loss"] = self.learner.heldout_loss()

    # -- internals -------------------------------------------------------------

    def _check(self, domain: str, body: Delta) -> str:
        return check_offset(body, domain, exchange_domain=self.config.exchange_domain,
                            model_name=self.config.model_name, base_version=self._w0_version,
                            shapes=self._shapes)  # fmt: skip

    def _fresh_peers(self) -> dict[str, PeerOffset]:
        now = self.learner.rounds
        for sender in [s for s, p in self._peers.items() if now - p.arrived > self.config.max_staleness]:
            del self._peers[sender]
        return dict(self._peers)

    def _own_offset(self) -> dict[str, np.ndarray]:
        return {n: w - self._w0[n] for n, w in self._trainable_weights().items()}

    def _shared_offset(self) -> Delta:
        """``(base - w0) + delta``: the learner's (private) delta on top of the already public base."""
        delta = self.learner.delta()
        base_offset = self._base_offset()
        tensors = {
            n: np.ascontiguousarray(base_offset[n] + delta.tensors[n], dtype=np.float32) for n in self._w0
        }
        if self.config.poison:
            tensors = poisoned(tensors, self.config.poison, self.learner.rounds, self.learner.config.seed)
        return Delta(
            model=self.config.model_name,
            tensors=tensors,
            base_version=self._w0_version,
            samples=delta.samples,
            round=self.learner.rounds,
            clip_norm=delta.clip_norm,
            noise_multiplier=delta.noise_multiplier,
        )

    def _base_offset(self) -> dict[str, np.ndarray]:
        base = self.learner.base_weights()
        return {n: base[n] - w0 for n, w0 in self._w0.items()}

    def _updates(self, peers: Mapping[str, PeerOffset]) -> tuple[list[str], list[Update]]:
        now = self.learner.rounds
        names = list(peers)
        updates = [Update(p.tensors, p.samples, float(max(now - p.arrived, 0))) for p in peers.values()]
        return names, updates

    def _merge(self, peers: Mapping[str, PeerOffset]) -> list[str]:
        names, updates = self._updates(peers)
        own = Update(self._own_offset(), self.learner.samples)
        try:
            result = aggregate(
                [own, *updates],
                self.config.rule,
                norm_factor=self.config.norm_factor,
                min_cosine=self.config.min_cosine,
                staleness_decay=self.config.staleness_decay,
                trusted=(0,),
            )
        except ValueError as exc:  # e.g. Krum with too few peers: keep the own model this round
            self.rejected["merge_skipped"] += 1
            self._events.append(("merge_skipped", {"peers": len(updates), "error": str(exc)}))
            return []
        for index, reason in result.rejected:
            if index > 0:
                self.rejected[reason.value] += 1
                offset = peers[names[index - 1]]
                if not offset.blamed:
                    offset.blamed = True
                    self._blame.append((names[index - 1], reason.value))
        used = [names[i - 1] for i in result.used if i > 0]
        return used if self._move_base(result.tensors, used) else []

    def _adopt(self, peers: Mapping[str, PeerOffset]) -> None:
        names, updates = self._updates(peers)
        try:
            result = aggregate(
                updates,
                self.config.rule,
                norm_factor=self.config.norm_factor,
                min_cosine=self.config.min_cosine,
                staleness_decay=self.config.staleness_decay,
            )
        except ValueError as exc:  # nothing usable to adopt: start from w0 like any first node
            self._events.append(("adopt_skipped", {"peers": len(updates), "error": str(exc)}))
            return
        used = [names[i] for i in result.used]
        if not self._move_base(result.tensors, used):
            return
        self._events.append(
            ("adopted", {"from": used, "heldout_loss": round(self.learner.heldout_loss(), 5)})
        )

    def _start_from_meta(self, version: int, offset: Mapping[str, np.ndarray]) -> None:
        before = self.learner.heldout_loss()
        self._move_base(offset, ["meta"])
        after = self.learner.heldout_loss()
        self._events.append(("meta_init", {"version": version, "loss_before": round(before, 5),
                                           "loss_after": round(after, 5)}))  # fmt: skip

    def _move_base(self, offset: Mapping[str, np.ndarray], contributors: list[str]) -> bool:
        """Make ``w0 + offset`` the learner's new base and model; False when the learner refused it
        (the step overflowed, or the merged model's loss was not finite: defences off, an attack
        through plain averaging can get there)."""
        base_offset = self._base_offset()
        with np.errstate(over="ignore", invalid="ignore"):
            step = {n: np.asarray(offset[n] - base_offset[n], dtype=np.float32) for n in self._w0}
        try:
            record = self.learner.apply_average(
                step, new_version=self.learner.version + 1, contributors=contributors, now=time.time()
            )
        except ValueError as exc:
            self.rejected["merge_undone"] += 1
            self._events.append(("merge_undone", {"from": contributors, "error": str(exc)}))
            log.warning("merge from %s undone: %s", ", ".join(contributors), exc)
            return False
        self.merges += 1
        self._events.append(
            (
                "merge",
                {
                    "version": record.version,
                    "from": list(record.contributors),
                    "loss_before": round(record.loss_before, 5),
                    "loss_after": round(record.loss_after, 5),
                },
            )
        )
        return True

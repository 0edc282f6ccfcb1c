"""Weights a learner shares as deltas: the part of a learner the experts node learner federates (torch).

A learner keeps its torch parameters and the base they were last merged
at. It publishes ``current - base`` (clipped, noised and accounted when
privacy is on) and takes a domain's average by moving the base. The experts
mixture and the braid policy share all of this; each says only what its
update weighs (``samples``), how it scores on held-out data
(``heldout_loss``) and what its privacy settings are (``privacy``).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .history import MergeRecord, VersionHistory
from .model import check_tensors
from .privacy import PrivacyConfig, RDPAccountant, add_noise, clip_update

__all__ = ["DeltaUpdate", "SharedWeights"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeltaUpdate:
    """A shareable weight update: trainable tensors only, ``current - base``.

    ``tensors`` are float32 and C-contiguous. With privacy on, the update
    was clipped to global L2 norm ``clip_norm`` and noised with std
    ``noise_multiplier * clip_norm``; otherwise both are None.
    """

    tensors: Mapping[str, np.ndarray]
    base_version: int
    samples: int
    clip_norm: float | None = None
    noise_multiplier: float | None = None


class SharedWeights:
    """Mixin: the state below is set by the learner's ``__init__`` (and ``load_state``)."""

    _params: dict[str, torch.nn.Parameter]
    _base: dict[str, torch.Tensor]
    _trainable: tuple[str, ...]
    _version: int
    _rng: np.random.Generator
    _accountant: RDPAccountant
    _history: VersionHistory

    # ------------------------------------------------------------------ what the learner says

    @property
    def samples(self) -> int:
        """What an update of this learner weighs in an average."""
        raise NotImplementedError

    @property
    def privacy(self) -> PrivacyConfig | None:
        raise NotImplementedError

    def heldout_loss(self) -> float:
        raise NotImplementedError

    # ------------------------------------------------------------------ shared

    @property
    def version(self) -> int:
        """The version of the base: the last merged (or adopted) model."""
        return self._version

    @property
    def trainable(self) -> tuple[str, ...]:
        """Names of the parameters that are trained and shared."""
        return self._trainable

    @property
    def history(self) -> VersionHistory:
        """The merge records (the learner's own object; do not modify)."""
        return self._history

    def epsilon(self) -> float:
        """Epsilon spent so far at the configured delta; 0.0 with privacy off or before any delta."""
        p = self.privacy
        return 0.0 if p is None else self._accountant.epsilon(p.delta)

    def delta(self) -> DeltaUpdate:
        """The trainable weights minus the base, clipped and noised when privacy is on.

        Each call with privacy on is one release and is accounted (epsilon grows).
        The local model is not changed.
        """
        with torch.no_grad():
            raw = {n: (self._params[n] - self._base[n]).numpy().astype(np.float32) for n in self._trainable}
        p = self.privacy
        if p is None:
            tensors = {k: np.ascontiguousarray(v) for k, v in raw.items()}
            return DeltaUpdate(tensors=tensors, base_version=self._version, samples=self.samples)
        clipped, norm = clip_update(raw, p.clip_norm)
        tensors = add_noise(clipped, p.noise_multiplier * p.clip_norm, self._rng)
        self._accountant.step(p.noise_multiplier, sample_rate=p.sample_rate)
        log.debug("delta norm %.4f clipped to %.4f; epsilon now %.3f", norm, p.clip_norm, self.epsilon())
        return DeltaUpdate(
            tensors=tensors,
            base_version=self._version,
            samples=self.samples,
            clip_norm=p.clip_norm,
            noise_multiplier=p.noise_multiplier,
        )

    def apply_average(
        self,
        avg_delta: Mapping[str, np.ndarray],
        *,
        new_version: int,
        contributors: Sequence[str],
        now: float,
    ) -> MergeRecord:
        """Move the base by the domain's averaged delta; the model becomes the new base.

        ``avg_delta`` must hold exactly the trainable tensors with their
        shapes; ``new_version`` must exceed the current version. Local
        training since the last merge is replaced by the average (it was
        shared through :meth:`delta`). Raises ValueError, changing nothing,
        on bad names, shapes, non-finite values or version, and when the
        merged model's held-out loss is not finite: finite deltas can still
        overflow the weights or the predictions, and a node that adopted
        such a model could never learn its way back.
        """
        if new_version <= self._version:
            raise ValueError(f"new_version {new_version} must exceed the current version {self._version}")
        checked = check_tensors(
            self._params, avg_delta, allowed=self._trainable, exact=True, what="average delta"
        )
        before = self.heldout_loss()
        kept = {n: (self._base[n].clone(), self._params[n].detach().clone()) for n in checked}
        with torch.no_grad():
            for name, value in checked.items():
                self._base[name] += value
                self._params[name].copy_(self._base[name])
        after = self.heldout_loss()
        if not math.isfinite(after):
            with torch.no_grad():
                for name, (base, param) in kept.items():
                    self._base[name] = base
                    self._params[name].copy_(param)
            raise ValueError(f"the merged model's held-out loss is {after}; the merge was undone")
        old = self._version
        self._version = new_version
        rec = MergeRecord(
            version=new_version,
            base_version=old,
            contributors=tuple(contributors),
            at=float(now),
            loss_before=before,
            loss_after=after,
        )
        self._history.record(rec)
        log.info(
            "merged v%d -> v%d from %d contributors: heldout %.4f -> %.4f",
            old,
            new_version,
            len(rec.contributors),
            rec.loss_before,
            rec.loss_after,
        )
        return rec

    def base_weights(self) -> dict[str, np.ndarray]:
        """Copies of the trainable parameters as of the last merge (the base deltas are taken against)."""
        return {n: self._base[n].numpy().astype(np.float32, copy=True) for n in self._trainable}

    def weights(self) -> dict[str, np.ndarray]:
        """Copies of all current parameters (frozen ones included), float32."""
        with torch.no_grad():
            return {n: p.detach().numpy().astype(np.float32, copy=True) for n, p in self._params.items()}

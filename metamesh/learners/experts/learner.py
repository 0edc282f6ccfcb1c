"""ExpertLearner: local training with FedProx, layer freezing and DP weight deltas (seeds 001, 002).

The learner is synchronous and not thread-safe: the node calls every method
from one worker thread (never from the event loop; a round takes
milliseconds to a few hundred milliseconds of CPU). One cycle is::

    learner.train_round()                  # local epochs against the last merged base
    d = learner.delta()                    # share: (clipped, noised) current - base
    ...                                    # the domain averages members' deltas (elsewhere)
    learner.apply_average(avg, new_version=v + 1, contributors=ids, now=t)

All weights are float32. Tensor names are the model's parameter names
(``expert0.fc1.weight`` … ``gate.bias``). Frozen parameters (config
``frozen`` name prefixes) are never trained and never appear in a delta;
they change only through :meth:`ExpertLearner.set_weights` or
:meth:`ExpertLearner.load_state`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch

from metamesh.errors import ConfigError
from metamesh.learners.optim import SGD

from .config import ExpertConfig
from .data import NodeData
from .history import VersionHistory
from .model import (
    MixtureOfExperts,
    check_tensors,
    expert_of,
    init_weights,
    is_frozen,
    momentum_state,
    parse_momentum_state,
)
from .privacy import PrivacyConfig, RDPAccountant
from .report import ExpertInsight, RoundReport
from .shared import DeltaUpdate, SharedWeights

__all__ = ["DeltaUpdate", "ExpertConfig", "ExpertInsight", "ExpertLearner", "RoundReport"]

log = logging.getLogger(__name__)

STATE_FORMAT = 1


def _check_data(data: NodeData) -> None:
    x, y, xt, yt = data.x_train, data.y_train, data.x_test, data.y_test
    if x.ndim != 2 or x.shape[0] < 1 or x.shape[1] < 1 or y.shape != (x.shape[0],):
        raise ConfigError(f"training data must be x (n, f) and y (n,) with n >= 1, got {x.shape} {y.shape}")
    if xt.ndim != 2 or xt.shape[0] < 1 or xt.shape[1] != x.shape[1] or yt.shape != (xt.shape[0],):
        raise ConfigError(
            f"test data must be x (m, {x.shape[1]}) and y (m,) with m >= 1, got {xt.shape} {yt.shape}"
        )
    if not all(np.isfinite(a).all() for a in (x, y, xt, yt)):
        raise ConfigError("data must hold finite numbers")


class ExpertLearner(SharedWeights):
    """A mixture of experts trained on one node's data; see the module docstring for the cycle."""

    def __init__(self, data: NodeData, config: ExpertConfig | None = None) -> None:
        self.config = cfg = config if config is not None else ExpertConfig()
        _check_data(data)
        if torch.get_num_threads() != cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.data = data
        self._x = torch.from_numpy(np.ascontiguousarray(data.x_train, dtype=np.float32))
        self._y = torch.from_numpy(np.ascontiguousarray(data.y_train, dtype=np.float32))
        self._xt = torch.from_numpy(np.ascontiguousarray(data.x_test, dtype=np.float32))
        self._yt = torch.from_numpy(np.ascontiguousarray(data.y_test, dtype=np.float32))
        self.model = MixtureOfExperts(data.n_features, cfg.n_experts, cfg.hidden)
        init_weights(self.model, np.random.default_rng(cfg.init_seed))
        self._params: dict[str, torch.nn.Parameter] = dict(self.model.named_parameters())
        for prefix in cfg.frozen:
            if not any(is_frozen(n, (prefix,)) for n in self._params):
                raise ConfigError(f"frozen prefix {prefix!r} matches no parameter")
        self._trainable = tuple(n for n in self._params if not is_frozen(n, cfg.frozen))
        if not self._trainable:
            raise ConfigError("frozen prefixes cover every parameter: nothing to train")
        for name, p in self._params.items():
            p.requires_grad_(name in self._trainable)
        self._lrs = {g: cfg.lr for g in (*self.model.expert_names, "gate")}
        self._optimizer = self._new_optimizer()
        self._base = {n: p.detach().clone() for n, p in self._params.items()}
        self._rng = np.random.default_rng(cfg.seed)
        self._accountant = RDPAccountant()
        self._history = VersionHistory(maxlen=cfg.history_len)
        self._version = 0
        self._rounds = 0

    # ------------------------------------------------------------------ properties

    @property
    def rounds(self) -> int:
        """How many training rounds this learner ran."""
        return self._rounds

    @property
    def domain(self) -> str:
        """The data's domain."""
        return self.data.domain

    @property
    def samples(self) -> int:
        """Training samples: what an update of this learner weighs in an average."""
        return len(self._x)

    @property
    def privacy(self) -> PrivacyConfig | None:
        return self.config.privacy

    # ------------------------------------------------------------------ training

    def train_round(self) -> RoundReport:
        """Run ``local_epochs`` of minibatch SGD with momentum on the local data with the FedProx term.

        The loss is ``MSE + mu/2 * ||w - w_base||²`` over trainable
        parameters, ``w_base`` being the weights at the last merge. CPU-bound;
        call it from a worker thread. A step whose loss is not finite makes
        no update, and a round that leaves a non-finite held-out loss is
        undone back to the base (weights a peer pushed towards overflow
        must not turn into NaN weights that no later merge can repair).
        """
        cfg = self.config
        start = time.perf_counter()
        self.model.train()
        n = len(self._x)
        steps, skipped, loss_sum, seen = 0, 0, 0.0, 0
        for epoch in range(cfg.local_epochs):
            order = torch.from_numpy(self._rng.permutation(n))
            for lo in range(0, n, cfg.batch_size):
                idx = order[lo : lo + cfg.batch_size]
                pred, _ = self.model(self._x[idx])
                mse = torch.mean((pred - self._y[idx]) ** 2)
                if not torch.isfinite(mse):
                    skipped += 1
                    continue
                self._optimizer.zero_grad()
                mse.backward()
                if cfg.fedprox_mu > 0:
                    self._add_prox_gradient()
                self._optimizer.step()
                steps += 1
                if epoch == cfg.local_epochs - 1:
                    loss_sum += float(mse.detach()) * len(idx)
                    seen += len(idx)
        self._rounds += 1
        heldout = self.heldout_loss()
        diverged = not math.isfinite(heldout)
        if diverged:
            self._back_to_base()
            heldout = self.heldout_loss()
            log.warning("round %d diverged (%d of %d steps skipped); back to the base", self._rounds,
                        skipped, steps + skipped)  # fmt: skip
        report = RoundReport(
            round=self._rounds,
            version=self._version,
            epochs=cfg.local_epochs,
            steps=steps,
            samples=n,
            train_loss=loss_sum / seen if seen else math.nan,
            heldout_loss=heldout,
            seconds=time.perf_counter() - start,
            skipped_steps=skipped,
            diverged=diverged,
        )
        log.debug(
            "round %d: train %.4f heldout %.4f in %.3fs",
            report.round,
            report.train_loss,
            report.heldout_loss,
            report.seconds,
        )
        return report

    def _back_to_base(self) -> None:
        """Make the model its base again, with fresh optimizer state (the old momentum led here)."""
        with torch.no_grad():
            for name in self._trainable:
                self._params[name].copy_(self._base[name])
        self._optimizer = self._new_optimizer()

    def _add_prox_gradient(self) -> None:
        """Add the gradient of ``mu/2 * ||w - w_base||²``, i.e. ``mu * (w - w_base)``, in place."""
        params = [self._params[n] for n in self._trainable]
        grads = [p.grad for p in params]
        with torch.no_grad():
            diffs = torch._foreach_sub([p.detach() for p in params], [self._base[n] for n in self._trainable])
            torch._foreach_add_(grads, diffs, alpha=self.config.fedprox_mu)

    def _new_optimizer(self) -> SGD:
        groups: dict[str, list[torch.nn.Parameter]] = {}
        for name in self._trainable:
            groups.setdefault(expert_of(name), []).append(self._params[name])
        return SGD(
            [{"params": ps, "lr": self._lrs[g], "name": g} for g, ps in groups.items()],
            momentum=self.config.momentum,
        )

    def learning_rates(self) -> dict[str, float]:
        """The current rate of every group (experts and ``gate``)."""
        return dict(self._lrs)

    def set_learning_rates(self, per_expert: Mapping[str, float]) -> None:
        """Set the learning rate of experts (``expert0`` …) and of ``gate``, e.g. from meta-parameters.

        Raises ValueError for an unknown name or a rate that is not a
        positive finite number; nothing is changed then.
        """
        for name, lr in per_expert.items():
            if name not in self._lrs:
                raise ValueError(f"unknown learning-rate group {name!r}; known: {sorted(self._lrs)}")
            if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
                raise ValueError(f"learning rate for {name!r} must be a positive number, got {lr!r}")
        for name, lr in per_expert.items():
            self._lrs[name] = float(lr)
        for group in self._optimizer.param_groups:
            group["lr"] = self._lrs[group["name"]]

    # ------------------------------------------------------------------ evaluation

    def heldout_loss(self) -> float:
        """MSE of the current model on the held-out (whole-domain) test set."""
        with torch.no_grad():
            pred, _ = self.model(self._xt)
            return float(torch.mean((pred - self._yt) ** 2))

    def loss_on(self, x: np.ndarray, y: np.ndarray) -> float:
        """MSE of the current model on ``x`` ``(n, f)``, ``y`` ``(n,)`` (e.g. a validation split)."""
        with torch.no_grad():
            pred, _ = self.model(torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32)))
            return float(
                torch.mean((pred - torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32))) ** 2)
            )

    def insight(self) -> ExpertInsight:
        """Per-expert loss and routed sample counts on the training data, plus metrics."""
        with torch.no_grad():
            pred, gate = self.model(self._x)
            err = ((pred - self._y) ** 2).numpy().astype(np.float64)
            route = gate.argmax(dim=1).numpy()
        loss: dict[str, float] = {}
        count: dict[str, int] = {}
        for k, name in enumerate(self.model.expert_names):
            mask = route == k
            count[name] = int(mask.sum())
            loss[name] = float(err[mask].mean()) if count[name] else 0.0
        avg = float(err.mean())
        metrics = {
            "train_loss": avg,
            "heldout_loss": self.heldout_loss(),
            "version": float(self._version),
            "rounds": float(self._rounds),
        }
        eps = self.epsilon()
        if self.config.privacy is not None and math.isfinite(eps):
            metrics["epsilon"] = eps
        return ExpertInsight(
            expert_loss=loss,
            expert_samples=count,
            avg_loss=avg,
            total_samples=len(self._x),
            domain=self.data.domain,
            metrics=metrics,
        )

    def affinity(self) -> dict[str, float]:
        """Domain → share of this node's data (1.0 for its one domain with synthetic data)."""
        return self.data.affinity()

    # ------------------------------------------------------------------ sharing (delta, apply_average and
    # weights come from SharedWeights)

    def set_weights(
        self, tensors: Mapping[str, np.ndarray], *, version: int | None = None, strict: bool = True
    ) -> None:
        """Adopt weights (a coordinator's initial weights, or a domain's model for a late joiner).

        The given tensors become both the model and the base, and the
        optimizer state is reset. With ``strict`` every parameter must be
        given, otherwise any subset. ``version``, if given, becomes the base
        version. Raises ValueError, changing nothing, on bad names, shapes
        or non-finite values.
        """
        checked = check_tensors(self._params, tensors, allowed=self._params, exact=strict, what="weights")
        if version is not None and version < 0:
            raise ValueError(f"version must be >= 0, got {version}")
        with torch.no_grad():
            for name, value in checked.items():
                self._params[name].copy_(value)
                self._base[name] = value.clone()
        self._optimizer = self._new_optimizer()
        if version is not None:
            self._version = version

    # ------------------------------------------------------------------ checkpoints

    def state(self) -> dict[str, Any]:
        """Everything needed to resume: plain data whose leaves are numbers, strings, lists or numpy arrays.

        Keys: ``format``, ``domain``, ``shape`` (features, experts, hidden),
        ``weights``, ``base``, ``version``, ``rounds``, ``lrs``, ``rng``,
        ``optimizer``, ``accountant``, ``history``. 128-bit RNG words are
        stored as decimal strings so the state fits msgpack and JSON.
        """
        rng = self._rng.bit_generator.state
        return {
            "format": STATE_FORMAT,
            "domain": self.data.domain,
            "shape": [self.data.n_features, self.config.n_experts, self.config.hidden],
            "weights": self.weights(),
            "base": {n: t.numpy().astype(np.float32, copy=True) for n, t in self._base.items()},
            "version": self._version,
            "rounds": self._rounds,
            "lrs": dict(self._lrs),
            "rng": {
                "bit_generator": rng["bit_generator"],
                "state": str(rng["state"]["state"]),
                "inc": str(rng["state"]["inc"]),
                "has_uint32": int(rng["has_uint32"]),
                "uinteger": int(rng["uinteger"]),
            },
            "optimizer": momentum_state(self._optimizer, self._params, self._trainable),
            "accountant": self._accountant.to_dict(),
            "history": self._history.to_dict(),
        }

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore what :meth:`state` returned. Raises ValueError on a malformed or mismatched state."""
        try:
            if state["format"] != STATE_FORMAT:
                raise ValueError(f"unsupported state format {state['format']!r}")
            want = [self.data.n_features, self.config.n_experts, self.config.hidden]
            if list(state["shape"]) != want:
                raise ValueError(f"state is for model shape {state['shape']}, this learner is {want}")
            names = tuple(self._params)
            weights = check_tensors(
                self._params, state["weights"], allowed=names, exact=True, what="state weights"
            )
            base = check_tensors(self._params, state["base"], allowed=names, exact=True, what="state base")
            lrs = {str(k): float(v) for k, v in state["lrs"].items()}
            if set(lrs) != set(self._lrs):
                raise ValueError("state learning-rate groups do not match the model")
            r = state["rng"]
            rng = np.random.default_rng()
            rng.bit_generator.state = {
                "bit_generator": r["bit_generator"],
                "state": {"state": int(r["state"]), "inc": int(r["inc"])},
                "has_uint32": int(r["has_uint32"]),
                "uinteger": int(r["uinteger"]),
            }
            accountant = RDPAccountant.from_dict(state["accountant"])
            history = VersionHistory.from_dict(state["history"])
            version, rounds = int(state["version"]), int(state["rounds"])
            moments = parse_momentum_state(state.get("optimizer") or {}, self._params, self._trainable)
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"malformed learner state: {exc!r}") from exc
        if state["domain"] != self.data.domain:
            log.warning(
                "restoring state of domain %r into a learner of domain %r", state["domain"], self.data.domain
            )
        with torch.no_grad():
            for name, value in weights.items():
                self._params[name].copy_(value)
            self._base = base
        self._lrs = lrs
        self._optimizer = self._new_optimizer()
        for name, moment in moments.items():
            self._optimizer.state[self._params[name]] = moment
        self._rng, self._accountant, self._history = rng, accountant, history
        self._version, self._rounds = version, rounds

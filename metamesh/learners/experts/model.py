"""A small mixture of experts in torch: K MLP experts and a softmax gate.

Each expert is ``n_features → hidden → hidden → 1`` with tanh activations; the
gate is one linear layer ``n_features → K`` followed by a softmax, and the
prediction is the gate-weighted sum of the experts' outputs. Parameter names
are stable and flat (``expert0.fc1.weight`` … ``expert{K-1}.out.bias``,
``gate.weight``, ``gate.bias``) because they are the tensor names on the wire.

Initialisation draws from a numpy generator (PyTorch's default uniform
``±1/sqrt(fan_in)`` scheme), never from torch's global RNG, so two nodes with
the same ``init_seed`` start from bit-identical weights.
"""

from __future__ import annotations

import math
from collections.abc import Collection, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from metamesh.learners.optim import SGD

__all__ = [
    "Expert",
    "MixtureOfExperts",
    "check_tensors",
    "expert_of",
    "init_weights",
    "is_frozen",
    "momentum_state",
    "parse_momentum_state",
]


class Expert(nn.Module):  # type: ignore[misc]
    """One MLP expert: ``fc1 → tanh → fc2 → tanh → out``."""

    def __init__(self, n_features: int, hidden: int) -> None:
        super().__init__()
        self.fc1 = nn.Linear(n_features, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.out = nn.Linear(hidden, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``(n, n_features) → (n,)``."""
        h = torch.tanh(self.fc1(x))
        h = torch.tanh(self.fc2(h))
        return self.out(h).squeeze(-1)


class MixtureOfExperts(nn.Module):  # type: ignore[misc]
    """K experts under a softmax gate. ``forward`` returns ``(prediction (n,), gate (n, K))``."""

    def __init__(self, n_features: int, n_experts: int, hidden: int) -> None:
        super().__init__()
        if n_features < 1 or n_experts < 1 or hidden < 1:
            raise ValueError(f"bad model size: features {n_features}, experts {n_experts}, hidden {hidden}")
        self.n_experts = n_experts
        self.expert_names = tuple(f"expert{k}" for k in range(n_experts))
        for name in self.expert_names:
            self.add_module(name, Expert(n_features, hidden))
        self.gate = nn.Linear(n_features, n_experts)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Gate-weighted prediction and the gate probabilities.

        The experts run as one batched matmul per layer over weights stacked
        on the fly: the same function as calling each expert, in a third of
        the kernel launches (what dominates at this size on a CPU).
        """
        gate = torch.softmax(self.gate(x), dim=-1)
        experts: list[Expert] = [getattr(self, name) for name in self.expert_names]
        h = x.unsqueeze(0)  # (1, n, f), broadcast over experts
        for layer in ("fc1", "fc2", "out"):
            w = torch.stack([getattr(e, layer).weight for e in experts])  # (K, out, in)
            b = torch.stack([getattr(e, layer).bias for e in experts])  # (K, out)
            h = torch.baddbmm(b.unsqueeze(1), h.expand(len(experts), -1, -1), w.transpose(1, 2))
            if layer != "out":
                h = torch.tanh(h)
        outs = h.squeeze(-1).transpose(0, 1)  # (n, K)
        return (gate * outs).sum(dim=-1), gate


def expert_of(param_name: str) -> str:
    """The learning-rate group of a parameter: ``expert3`` for ``expert3.fc1.weight``, else ``gate``."""
    return param_name.split(".", 1)[0]


def init_weights(model: nn.Module, rng: np.random.Generator) -> None:
    """Fill every parameter from ``rng``: uniform ``±1/sqrt(fan_in)``, in name order."""
    with torch.no_grad():
        for name, param in sorted(model.named_parameters()):
            fan_in = param.shape[1] if param.dim() == 2 else _fan_in_of_bias(model, name)
            bound = 1.0 / math.sqrt(fan_in)
            values = rng.uniform(-bound, bound, size=tuple(param.shape)).astype(np.float32)
            param.copy_(torch.from_numpy(values))


def _fan_in_of_bias(model: nn.Module, name: str) -> int:
    weight = dict(model.named_parameters())[name.rsplit(".", 1)[0] + ".weight"]
    return int(weight.shape[1])


def is_frozen(name: str, prefixes: Sequence[str]) -> bool:
    """Whether parameter ``name`` falls under one of the prefixes, matched on dot boundaries."""
    return any(name == p.rstrip(".") or name.startswith(p.rstrip(".") + ".") for p in prefixes)


def check_tensors(
    params: Mapping[str, torch.Tensor],
    tensors: Mapping[str, np.ndarray],
    *,
    allowed: Collection[str],
    exact: bool,
    what: str,
) -> dict[str, torch.Tensor]:
    """Validate incoming named tensors against ``params`` and return float32 torch copies.

    Names must be in ``allowed`` (all of them when ``exact``), shapes must
    match the parameters, values must be finite numbers. Raises ValueError
    naming ``what`` and the first offending tensors.
    """
    unknown = sorted(set(tensors) - set(allowed))
    if unknown:
        known = [n for n in unknown if n in params]
        hint = f" ({len(known)} frozen or not trainable)" if known else ""
        raise ValueError(f"{what}: unexpected tensors {unknown[:5]}{hint}")
    if exact:
        missing = sorted(set(allowed) - set(tensors))
        if missing:
            raise ValueError(f"{what}: missing tensors {missing[:5]}")
    out: dict[str, torch.Tensor] = {}
    for name, value in tensors.items():
        arr = np.asarray(value)
        want = tuple(params[name].shape)
        if arr.shape != want:
            raise ValueError(f"{what}: {name} has shape {arr.shape}, expected {want}")
        if arr.dtype.kind not in "fiu" or not np.isfinite(arr).all():
            raise ValueError(f"{what}: {name} must hold finite numbers ({arr.dtype})")
        out[name] = torch.from_numpy(np.array(arr, dtype=np.float32))
    return out


def momentum_state(
    optimizer: SGD, params: Mapping[str, torch.Tensor], names: Sequence[str]
) -> dict[str, np.ndarray]:
    """SGD's momentum buffers as plain data: ``{name: array}`` for parameters that have one."""
    out: dict[str, np.ndarray] = {}
    for name in names:
        buf = optimizer.state.get(params[name], {}).get("momentum_buffer")
        if buf is not None:
            out[name] = buf.detach().numpy().astype(np.float32, copy=True)
    return out


def parse_momentum_state(
    saved: Mapping[str, Any], params: Mapping[str, torch.Tensor], names: Sequence[str]
) -> dict[str, dict[str, torch.Tensor]]:
    """Inverse of :func:`momentum_state`, as optimizer state entries; parameters not in ``names`` are skipped.

    Raises ValueError on a wrong shape or non-finite values.
    """
    out: dict[str, dict[str, torch.Tensor]] = {}
    for name, value in saved.items():
        if name not in names:
            continue  # frozen here; its momentum is irrelevant
        arr = np.asarray(value, dtype=np.float32)
        if arr.shape != tuple(params[name].shape) or not np.isfinite(arr).all():
            raise ValueError(f"optimizer state for {name} has the wrong shape or non-finite values")
        out[name] = {"momentum_buffer": torch.from_numpy(arr.copy())}
    return out

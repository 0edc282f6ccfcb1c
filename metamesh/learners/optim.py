"""SGD with momentum, and Adam, computed as ``torch.optim`` computes them on the CPU (torch).

Why not ``torch.optim``: its optimizers import ``torch._dynamo`` when they are
built and on their first step, which costs as much CPU as importing torch
itself (about 1.5 s here, many more on an edge board), in every node process
that learns, for a compiler the nodes never use. The updates below are the
same element-wise operations in the same order as ``torch.optim.SGD``
(``dampening=0``, no weight decay, not Nesterov) and ``torch.optim.Adam``
(no weight decay, not AMSGrad), so they give the same weights bit for bit
(``tests/node/test_optim.py`` checks it against ``torch.optim``).

Both keep the parts of the ``torch.optim`` interface the learners use:
``param_groups`` (dicts with ``params`` and ``lr``, plus any other keys a
learner adds), ``state`` (per parameter), ``zero_grad`` and ``step``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import torch

__all__ = ["SGD", "Adam"]


def _groups(params: Iterable[torch.Tensor] | Iterable[Mapping[str, Any]], lr: float) -> list[dict[str, Any]]:
    items = list(params)
    if not items:
        raise ValueError("an optimizer needs parameters")
    if isinstance(items[0], Mapping):
        return [{"lr": lr, **group, "params": list(group["params"])} for group in items]
    return [{"lr": lr, "params": items}]


class _Optimizer:
    def __init__(self, params: Iterable[torch.Tensor] | Iterable[Mapping[str, Any]], lr: float) -> None:
        self.param_groups = _groups(params, lr)
        self.state: dict[torch.Tensor, dict[str, Any]] = {}

    def step(self) -> None:
        with torch.no_grad():
            for group in self.param_groups:
                self._step(group)

    def _step(self, group: dict[str, Any]) -> None:
        raise NotImplementedError

    def zero_grad(self) -> None:
        """Drop the gradients (``torch.optim``'s ``set_to_none=True``, its default)."""
        for group in self.param_groups:
            for p in group["params"]:
                p.grad = None


class SGD(_Optimizer):
    """``p -= lr * buf`` with ``buf = momentum * buf + grad`` (``buf = grad`` on the first step)."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[Mapping[str, Any]],
        lr: float = 1e-3,
        momentum: float = 0.0,
    ) -> None:
        super().__init__(params, lr)
        self.momentum = momentum

    def _step(self, group: dict[str, Any]) -> None:
        for p in group["params"]:
            if p.grad is None:
                continue
            step = p.grad
            if self.momentum != 0:
                state = self.state.setdefault(p, {})
                buf = state.get("momentum_buffer")
                if buf is None:
                    buf = state["momentum_buffer"] = torch.clone(step).detach()
                else:
                    buf.mul_(self.momentum).add_(step)
                step = buf
            p.add_(step, alpha=-group["lr"])


class Adam(_Optimizer):
    """Adam with bias correction (Kingma and Ba), as ``torch.optim.Adam``'s single-tensor path."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[Mapping[str, Any]],
        lr: float = 1e-3,
        betas: tuple[float, float] = (0.9, 0.999),
        eps: float = 1e-8,
    ) -> None:
        super().__init__(params, lr)
        self.betas = betas
        self.eps = eps

    def _step(self, group: dict[str, Any]) -> None:
        beta1, beta2 = self.betas
        for p in group["params"]:
            if p.grad is None:
                continue
            grad = p.grad
            state = self.state.get(p)
            if state is None:
                state = self.state[p] = {
                    "step": 0,
                    "exp_avg": torch.zeros_like(p, memory_format=torch.preserve_format),
                    "exp_avg_sq": torch.zeros_like(p, memory_format=torch.preserve_format),
                }
            state["step"] += 1
            exp_avg, exp_avg_sq = state["exp_avg"], state["exp_avg_sq"]
            exp_avg.lerp_(grad, 1 - beta1)
            exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            step = float(state["step"])
            step_size = group["lr"] / (1 - beta1**step)
            denom = (exp_avg_sq.sqrt() / (1 - beta2**step) ** 0.5).add_(self.eps)
            p.addcdiv_(exp_avg, denom, value=-step_size)

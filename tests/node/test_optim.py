"""The learners' optimizers give the same weights as torch.optim, bit for bit, without importing dynamo."""

from __future__ import annotations

import subprocess
import sys

import pytest

torch = pytest.importorskip("torch")

from metamesh.learners.optim import SGD, Adam  # noqa: E402

pytestmark = pytest.mark.torch


def params(seed: int) -> list[torch.nn.Parameter]:
    g = torch.Generator().manual_seed(seed)
    return [torch.nn.Parameter(torch.randn(shape, generator=g)) for shape in ((7, 5), (5,), (3, 2, 4))]


def train(make, seed: int = 0, steps: int = 25) -> list[torch.Tensor]:
    ps = params(seed)
    opt = make(ps)
    g = torch.Generator().manual_seed(seed + 1)
    for i in range(steps):
        opt.zero_grad()  # torch.optim too: set_to_none is its default
        loss = sum(((p - torch.randn(p.shape, generator=g)) ** 2).sum() for p in ps)
        loss.backward()
        if i == 10:
            ps[1].grad = None  # a parameter with no gradient this step is left alone
        opt.step()
    return [p.detach().clone() for p in ps]


@pytest.mark.timeout(30)
def test_sgd_with_momentum_matches_torch_bit_for_bit() -> None:
    def groups(ps):
        return [{"params": ps[:2], "lr": 0.05, "name": "a"}, {"params": ps[2:], "lr": 0.01, "name": "b"}]

    ours = train(lambda ps: SGD(groups(ps), momentum=0.9))
    theirs = train(lambda ps: torch.optim.SGD(groups(ps), momentum=0.9, foreach=True))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))
    plain, reference = train(lambda ps: SGD(ps, lr=0.1)), train(lambda ps: torch.optim.SGD(ps, lr=0.1))
    assert all(torch.equal(a, b) for a, b in zip(plain, reference, strict=True))


@pytest.mark.timeout(30)
def test_adam_matches_torch_bit_for_bit() -> None:
    ours = train(lambda ps: Adam(ps, lr=0.003))
    theirs = train(lambda ps: torch.optim.Adam(ps, lr=0.003))
    assert all(torch.equal(a, b) for a, b in zip(ours, theirs, strict=True))


@pytest.mark.timeout(60)
def test_a_learner_that_trains_does_not_import_the_torch_compiler() -> None:
    code = (
        "import sys\n"
        "from metamesh.learners.braid.fusion import SimulatedBackend\n"
        "from metamesh.learners.braid.learner import BraidConfig, BraidLearner\n"
        "from metamesh.learners.braid.pool import SIMULATED_POOL as P\n"
        "from metamesh.learners.braid.tasks import TaskStream\n"
        "from metamesh.learners.experts.data import make_node_data\n"
        "from metamesh.learners.experts.learner import ExpertLearner\n"
        "b = BraidLearner(P, SimulatedBackend(P), TaskStream({'code': 1.0}, budgets=[4.0],"
        " latency_limit_ms=3000, seed=0), BraidConfig(tasks_per_round=32))\n"
        "b.train_round()\n"
        "ExpertLearner(make_node_data('economic', 0, n_train=64, n_test=64, seed=0)).train_round()\n"
        "assert 'torch._dynamo' not in sys.modules, 'torch._dynamo was imported'\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=50)
    assert result.returncode == 0, result.stderr[-2000:]

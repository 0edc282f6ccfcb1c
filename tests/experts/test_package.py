"""The experts package's public surface, and that its numpy parts never import torch."""

from __future__ import annotations

import metamesh.learners.experts as experts
from tests.torchless import run_with_torch_blocked, torch_modules_after_importing

TORCH_FREE = [
    "metamesh.learners.experts",
    "metamesh.learners.experts.data",
    "metamesh.learners.experts.privacy",
    "metamesh.learners.experts.history",
    "metamesh.learners.experts.checks",
    "metamesh.learners.experts.guards",
    "metamesh.learners.experts.meta",
    "metamesh.learners.experts.config",
    "metamesh.learners.experts.report",
    "metamesh.learners.experts.federation",
    "metamesh.learners.experts.poison",
]
LAZY = {"DeltaUpdate", "ExpertConfig", "ExpertInsight", "ExpertLearner", "RoundReport", "MixtureOfExperts"}


def test_public_names_are_all() -> None:
    helpers = {
        "data",
        "privacy",
        "history",
        "model",
        "learner",
        "shared",
        "node_learner",
        "config",
        "report",
        "federation",
        "poison",
        "checks",
        "guards",
        "meta",
        "annotations",
        "importlib",
        "TYPE_CHECKING",
        "Any",
    }
    eager = {n for n in vars(experts) if not n.startswith("_")} - helpers
    assert eager | LAZY == set(experts.__all__)
    assert set(dir(experts)) >= LAZY


def test_numpy_parts_never_import_torch() -> None:
    assert torch_modules_after_importing(TORCH_FREE) == ""


def test_numpy_parts_work_with_torch_blocked() -> None:
    code = (
        "import metamesh.learners.experts as e\n"
        "d = e.make_node_data('medical', 0, n_train=8, n_test=8, seed=0)\n"
        "a = e.RDPAccountant(); a.step(1.0)\n"
        "assert a.epsilon(1e-5) > 0 and d.x_train.shape == (8, 8)\n"
        "try:\n"
        "    e.ExpertLearner\n"
        "except ImportError:\n"
        "    pass\n"
        "else:\n"
        "    raise SystemExit('ExpertLearner imported without torch')\n"
    )
    run_with_torch_blocked(code)

"""Torch experts: a mixture-of-experts learner that shares insights and weight deltas (seeds 001, 002).

Files::

    data.py      synthetic non-IID domain tasks and the user data loader    numpy
    privacy.py   update clipping, Gaussian noise, the RDP accountant       numpy
    history.py   the bounded model version registry (merge records)        no torch
    model.py     K MLP experts under a softmax gate                        torch
    shared.py    weights shared as (DP) deltas and merged averages          torch
    config.py    ExpertConfig: how the learner learns                       no torch
    report.py    RoundReport, ExpertInsight: what a round and the learner report  no torch
    learner.py   ExpertLearner: FedProx training, frozen layers, DP deltas  torch
    federation.py  DeltaTrainer, ExpertNodeConfig: what and how a node federates  no torch
    checks.py    a peer's offset checked; the reason codes it is charged with  no torch
    meta.py      a coordinator's learning rates and initial weights, read   no torch
    guards.py    early stopping; the DP divergence guard                   no torch
    poison.py    corrupted offsets for robustness drills                    numpy
    node_learner.py  ExpertNodeLearner: the learner inside a node           no torch

Importing this package never imports torch: the torch-backed names
(``ExpertLearner``, ``ExpertConfig``, ``DeltaUpdate``, ``ExpertInsight``,
``RoundReport``, ``MixtureOfExperts``) load on first attribute access, so a
node without torch can still use the data, privacy and history parts.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .data import DOMAINS, NodeData, load_user_data, make_node_data
from .history import MergeRecord, VersionHistory
from .privacy import PrivacyConfig, RDPAccountant

if TYPE_CHECKING:
    from .config import ExpertConfig
    from .learner import ExpertLearner
    from .model import MixtureOfExperts
    from .report import ExpertInsight, RoundReport
    from .shared import DeltaUpdate

__all__ = [
    "DOMAINS",
    "DeltaUpdate",
    "ExpertConfig",
    "ExpertInsight",
    "ExpertLearner",
    "MergeRecord",
    "MixtureOfExperts",
    "NodeData",
    "PrivacyConfig",
    "RDPAccountant",
    "RoundReport",
    "VersionHistory",
    "load_user_data",
    "make_node_data",
]

_LAZY = {
    "DeltaUpdate": "shared",
    "ExpertConfig": "config",
    "ExpertInsight": "report",
    "ExpertLearner": "learner",
    "RoundReport": "report",
    "MixtureOfExperts": "model",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))

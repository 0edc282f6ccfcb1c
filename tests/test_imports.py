"""The core is importable without torch, and the public surface is what we mean it to be."""

from __future__ import annotations

import metamesh.protocol
from tests.torchless import run_with_torch_blocked, torch_modules_after_importing

CORE = [
    "metamesh",
    "metamesh.protocol",
    "metamesh.errors",
    "metamesh.coordinator.memory",
    "metamesh.coordinator.meta",
]


def test_core_never_imports_torch() -> None:
    loaded = torch_modules_after_importing(CORE)
    assert loaded == "", f"torch imported by the core: {loaded}"


def test_core_imports_with_torch_blocked() -> None:
    """Simulates an edge device: importing torch fails outright."""
    run_with_torch_blocked(f"for name in {CORE!r}: __import__(name)\n")


def test_protocol_public_names() -> None:
    public = {n for n in dir(metamesh.protocol) if not n.startswith("_")}
    modules = {"arrays", "batch", "codec", "endpoints", "envelope", "kinds", "limits", "proof", "annotations"}
    assert public - modules == set(metamesh.protocol.__all__)

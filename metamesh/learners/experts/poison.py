"""Byzantine drills: what a poisoning node publishes instead of its offset (tests and experiments only)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["poisoned"]


def poisoned(
    tensors: Mapping[str, np.ndarray], mode: str, round_: int, seed: int = 0
) -> dict[str, np.ndarray]:
    """What a Byzantine drill node publishes instead of its offset.

    ``scale``: x100; ``flip``: sign-flipped;
    ``nan``: NaN everywhere; ``random``: Gaussian noise of the offset's own
    norm, independent per node (``seed``); ``cycle``: one after another, by
    round. Poisoners that collude on one shared vector are a different attack:
    see the note in ``metamesh.gossip.merge.delta.direction_screen``.
    """
    modes = ("scale", "flip", "nan", "random")
    if mode == "cycle":
        mode = modes[round_ % len(modes)]
    rng = np.random.default_rng([seed, round_])
    out: dict[str, np.ndarray] = {}
    for name, t in tensors.items():
        match mode:
            case "scale":
                out[name] = t * np.float32(100)
            case "flip":
                out[name] = -t
            case "nan":
                out[name] = np.full_like(t, np.nan)
            case "random":
                scale = float(np.linalg.norm(t)) / max(np.sqrt(t.size), 1.0)
                out[name] = rng.normal(0.0, max(scale, 1e-3), t.shape).astype(np.float32)
            case _:
                raise ValueError(f"unknown poison {mode!r}")
    return out

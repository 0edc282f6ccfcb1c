"""Evolve prompts on several nodes of a domain together, in one process.

The rules nodes follow on the wire, run without sockets so that evolution
can be studied and tested quickly: each node takes its turn at an iteration;
a node shares its best prompt when it beats what it shared last by
``share_margin`` (send on change); every other node still evolving scores
the prompt on its own samples and adopts it only if it wins there
(:meth:`PromptEvolver.consider`). ``federated=False`` is the local baseline.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from metamesh.learners.evolve.evolver import PromptEvolver

__all__ = ["GroupResult", "evolve_group"]


@dataclass(frozen=True, slots=True)
class GroupResult:
    shared: int
    """Prompts sent (each to every other node)."""
    adopted: int
    """Received prompts that won locally."""
    refused: int
    """Received prompts that did not."""


async def evolve_group(
    evolvers: Sequence[PromptEvolver], *, federated: bool, share_margin: float = 0.05, max_turns: int = 1000
) -> GroupResult:
    """Iterate every evolver to convergence, sharing as described above. Bounded by ``max_turns``."""
    for ev in evolvers:
        await ev.start()
    last_shared = [ev.best.score for ev in evolvers]
    shared = adopted = refused = 0
    for _ in range(max_turns):
        active = False
        for i, ev in enumerate(evolvers):
            active = await ev.step() or active
            if not federated or ev.best.score < last_shared[i] + share_margin:
                continue
            last_shared[i] = ev.best.score
            shared += 1
            for other in evolvers:
                if other is ev or other.converged:
                    continue
                if await other.consider(ev.best.template):
                    adopted += 1
                else:
                    refused += 1
        if not active:
            break
    return GroupResult(shared, adopted, refused)

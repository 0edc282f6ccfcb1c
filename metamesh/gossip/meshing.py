"""A node's meshes: one per joined domain plus one for membership, as one link set.

The node holds SUB links to exactly the union of its mesh peers; this class
keeps the meshes and says whom to graft and prune. No sockets here.
"""

from __future__ import annotations

import random
from collections.abc import Collection, Iterable, Mapping, Sequence

from metamesh.gossip.mesh import Mesh, MeshConfig

__all__ = ["Meshes"]


class Meshes:
    def __init__(self, config: MeshConfig, domains: Iterable[str]) -> None:
        self.config = config
        self._meshes: dict[str, Mesh] = {d: Mesh(config) for d in domains}

    def join(self, domain: str) -> None:
        self._meshes.setdefault(domain, Mesh(self.config))

    def leave(self, domain: str) -> list[str]:
        """Forget a domain's mesh; returns its members, to be told with a prune."""
        mesh = self._meshes.pop(domain, None)
        return sorted(mesh.members) if mesh is not None else []

    def tick(
        self,
        now: float,
        candidates: Mapping[str, Sequence[str]],
        rng: random.Random,
        keep: Mapping[str, Sequence[str]] | None = None,
        preferred: Collection[str] = (),
    ) -> list[tuple[str, list[str], list[str]]]:
        """Grafts and prunes per domain: grafts from ``candidates`` (``preferred`` first), members
        kept while in ``keep``."""
        out = []
        for domain, mesh in self._meshes.items():
            kept = None if keep is None else keep.get(domain, ())
            actions = mesh.heartbeat(now, candidates.get(domain, ()), rng, kept, preferred)
            if actions.graft or actions.prune:
                out.append((domain, actions.graft, actions.prune))
        return out

    def on_graft(self, domain: str, peer: str, now: float) -> bool:
        mesh = self._meshes.get(domain)
        return mesh is not None and mesh.on_graft(peer, now)

    def pruned(self, domain: str, peer: str, now: float, backoff: float) -> None:
        """``peer`` out of the domain's mesh, not grafted again for ``backoff`` s (a prune, or no answer)."""
        mesh = self._meshes.get(domain)
        if mesh is not None:
            mesh.on_prune(peer, now, backoff)

    def forget(self, peer: str) -> None:
        for mesh in self._meshes.values():
            mesh.members.discard(peer)

    def desired(self) -> set[str]:
        out: set[str] = set()
        for mesh in self._meshes.values():
            out |= mesh.members
        return out

    def members(self, domain: str) -> set[str]:
        mesh = self._meshes.get(domain)
        return set(mesh.members) if mesh is not None else set()

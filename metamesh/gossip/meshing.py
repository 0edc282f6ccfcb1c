"""A node's meshes: one per joined domain plus one for membership, as one link set.

The node holds SUB links to exactly the union of its mesh peers; this class
keeps the meshes and says whom to graft and prune. No sockets here.

Every link carries the heartbeats and the ``shared`` domain (``_global``, which every node
subscribes to), so a node's idle traffic grows with its number of links, not with its meshes.
Three rules keep links near one band's worth however many domains a node is in (docs/scale.md):

- the shared mesh counts every link towards its degree, keeping only ``SHARED_OWN`` random
  members of its own (they join domains' meshes that would otherwise be islands), and it is
  kept last, after the domains' meshes have made their links;
- grafts go to peers already linked (by another mesh) first;
- a node in ``k`` domains runs each domain's mesh at ``1/k`` of the band, rounded up
  (:func:`split_band`).

Refusing grafts once a node holds enough links would bound them as well, but starves a newcomer
of a domain whose members are all full.
"""

from __future__ import annotations

import math
import random
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import replace

from metamesh.gossip.mesh import Mesh, MeshConfig

__all__ = ["SHARED_OWN", "Meshes", "split_band"]

#: Members the shared mesh keeps of its own, chosen at random: they join domains' meshes that
#: would otherwise be islands (nodes each in one domain), so membership gossip reaches everyone.
SHARED_OWN = 1


def split_band(config: MeshConfig, k: int) -> MeshConfig:
    """The band of each of ``k`` domain meshes sharing one node's links: ``1/k`` of it, rounded up."""
    if k <= 1:
        return config
    d_lo = max(1, math.ceil(config.d_lo / k))
    d = max(d_lo, math.ceil(config.d / k))
    return replace(config, d_lo=d_lo, d=d, d_hi=max(d, math.ceil(config.d_hi / k)))


class Meshes:
    def __init__(self, config: MeshConfig, domains: Iterable[str], *, shared: str = "") -> None:
        self.config = config
        self.shared = shared
        self._meshes: dict[str, Mesh] = {d: Mesh(config) for d in domains}
        self._split()

    def join(self, domain: str) -> None:
        self._meshes.setdefault(domain, Mesh(self.config))
        self._split()

    def leave(self, domain: str) -> list[str]:
        """Forget a domain's mesh; returns its members, to be told with a prune."""
        mesh = self._meshes.pop(domain, None)
        self._split()
        return sorted(mesh.members) if mesh is not None else []

    def _split(self) -> None:
        band = split_band(self.config, sum(d != self.shared for d in self._meshes))
        for domain, mesh in self._meshes.items():
            mesh.config = self.config if domain == self.shared else band

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
        # The shared mesh last, so it counts the links the domains' meshes have just made.
        for domain, mesh in sorted(self._meshes.items(), key=lambda item: item[0] == self.shared):
            kept = None if keep is None else keep.get(domain, ())
            linked = self.desired() - mesh.members  # links the other meshes hold: grafted first
            shared = domain == self.shared
            actions = mesh.heartbeat(
                now,
                candidates.get(domain, ()),
                rng,
                kept,
                preferred,
                linked=linked,
                carried=len(linked) if shared else 0,
                own=SHARED_OWN if shared else 0,
            )
            if actions.graft or actions.prune:
                out.append((domain, actions.graft, actions.prune))
        return out

    def on_graft(self, domain: str, peer: str, now: float) -> bool:
        mesh = self._meshes.get(domain)
        if mesh is None:
            return False
        return mesh.on_graft(peer, now)

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

"""The sections a node's settings are grouped in: network, gossip, learning, security, storage, observability.

Settings keep one flat name each (the ``NodeConfig`` field, the TOML key, ``--flag``,
``METAMESH_NAME``); a section says what a setting is about. ``metamesh node --help``
and docs/settings.md group by section, and a TOML file may give a section's settings in
a ``[node.SECTION]`` sub-table as well as flat in ``[node]``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import fields
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from metamesh.node.config import NodeConfig

__all__ = ["SECTIONS", "SECTION_TITLES", "by_section", "section_of"]

#: Every settable setting, by section, in the order the help and docs/settings.md show them.
SECTIONS: Mapping[str, tuple[str, ...]] = {
    "network": (
        "profile", "host", "advertise", "pub_port", "router_port", "seed", "beacon", "beacon_port",
        "beacon_address", "beacon_interval", "max_peers", "send_hwm", "recv_hwm",
    ),
    "gossip": (
        "domain", "heartbeat_interval", "suspect_after", "dead_after", "rejoin_heartbeats",
        "replay_window", "domain_enter", "domain_exit", "domain_dwell", "mesh_d", "mesh_d_lo",
        "mesh_d_hi", "prune_backoff", "lazy_relay_bytes",
    ),
    "learning": (
        "learner", "llm", "random_seed", "arm", "weights", "episodes", "eval_every", "eval_size",
        "pace", "wait_peers", "dataset", "drift_at", "share_domain", "part", "regions", "samples",
        "experts", "fedprox_mu", "frozen", "dp_clip", "dp_noise", "dp_delta", "aggregation",
        "norm_factor", "min_cosine", "poison", "pool", "task_mix", "budgets", "latency_limit",
        "tasks_per_round", "meta_interval", "meta_keepalive", "reptile_step", "memory_total",
        "memory_per_domain", "memory_per_client",
    ),
    "security": (
        "keys", "peer_networks", "max_clock_skew", "max_message_age", "quarantine_above",
        "quarantine_below", "score_half_life",
    ),
    "storage": ("home", "name", "checkpoint_interval"),
    "observability": ("metrics_port",),
}  # fmt: skip

#: What each section is about, as ``metamesh node --help`` titles its argument group.
SECTION_TITLES: Mapping[str, str] = {
    "network": "network: where the node listens and how it finds peers",
    "gossip": "gossip: liveness, domains and meshes (the profile's timings suit most networks)",
    "learning": "learning: what the node learns and how (experts and braid need torch: "
    "pip install 'metamesh[torch]'; braid takes the experts' federation flags too)",
    "security": "security: encryption, signatures, and defences against broken and hostile peers",
    "storage": "storage: the node's home (identity, checkpoints, event log)",
    "observability": "observability: metrics",
}

_SECTION_OF = {name: section for section, names in SECTIONS.items() for name in names}


def section_of(name: str) -> str:
    """The section of setting ``name``; raises KeyError for a name that is not a setting."""
    return _SECTION_OF[name]


def by_section(config: NodeConfig) -> dict[str, dict[str, Any]]:
    """``config``'s settable values grouped by section, e.g. ``by_section(c)["network"]["host"]``."""
    values = {f.name: getattr(config, f.name) for f in fields(config)}
    return {section: {name: values[name] for name in names} for section, names in SECTIONS.items()}


def flatten_table(table: Mapping[str, Any], source: str) -> dict[str, Any]:
    """A ``[node]`` table with its ``[node.SECTION]`` sub-tables merged in, as flat keys.

    Raises :class:`~metamesh.errors.ConfigError` naming the key when a sub-table is not a
    table, when a setting sits in another section's sub-table (naming the right one), or
    when a setting is given twice (flat and in its section). Unknown keys pass through, for
    the caller to report with the closest known name.
    """
    from metamesh.errors import ConfigError
    from metamesh.node.settings import RENAMED

    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key, value in table.items():
        if key in SECTIONS:
            if not isinstance(value, Mapping):
                raise ConfigError(f"{source}: [node.{key}] must be a table of settings, got {value!r}")
            pairs = [(sub, sub_value, f"[node.{key}]") for sub, sub_value in value.items()]
            for sub, _, _ in pairs:
                right = _SECTION_OF.get(RENAMED.get(sub, sub))
                if right is not None and right != key:
                    raise ConfigError(f"{source}: {sub} belongs in [node.{right}], not [node.{key}]")
        else:
            pairs = [(key, value, "[node]")]
        for name, item, place in pairs:
            if name in flat:
                raise ConfigError(f"{source}: {name} is given twice, in {where[name]} and in {place}")
            flat[name], where[name] = item, place
    return flat

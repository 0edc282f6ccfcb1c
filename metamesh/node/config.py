"""Typed node configuration with named profiles; settings grouped in sections (``sections``).

Precedence, lowest to highest: the profile's defaults, a TOML file, ``METAMESH_*``
environment variables, command-line flags. Profiles are small deltas from one
default, as memberlist does it:

- ``local``: a cluster on one machine (tests, demos): fast heartbeats, short timeouts;
- ``lan``: hosts on a LAN: Zyre/memberlist-like timings (suspect ~5 s, dead ~30 s);
- ``edge``: a Raspberry-Pi class device: LAN timings, small queues and limits.
"""

from __future__ import annotations

import ipaddress
import logging
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from metamesh.errors import ConfigError
from metamesh.node.sections import flatten_table
from metamesh.node.settings import ENV_PREFIX, OTHER_ENV, RENAMED, closest, coerce, env_name, flag_name
from metamesh.protocol import EDGE, LAN, Limits
from metamesh.protocol.endpoints import split_tcp

__all__ = ["CHOICES", "NOT_SETTABLE", "POISONS", "PROFILES", "SETTINGS", "NodeConfig", "load_config"]

log = logging.getLogger(__name__)

#: Corruptions a drill node applies to the weights it publishes (``poison``).
POISONS = ("scale", "flip", "nan", "random", "cycle")


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeConfig:
    """Everything a node needs to run. Build with :func:`load_config` or ``PROFILES[name]``."""

    profile: str = "lan"
    """Named defaults: ``local`` (one machine), ``lan`` (hosts on a LAN), ``edge`` (small devices)."""
    home: Path = Path("metamesh-node")
    """Node directory: identity, keys, checkpoints, event log."""
    name: str = ""
    """Node id to use when the home directory is new (default: a random one)."""
    host: str = "127.0.0.1"
    """Interface to bind; ``0.0.0.0`` for every interface of a LAN host."""
    advertise: str = ""
    """Address peers should use to reach this node (defaults to ``host``)."""
    pub_port: int = 0
    """TCP port of the PUB socket: what the node publishes and relays (0: any free port)."""
    router_port: int = 0
    """TCP port of the ROUTER socket: hello, snapshot, status, graft (0: any free port)."""
    seed: tuple[str, ...] = ()
    """ROUTER endpoints of known peers, e.g. ``tcp://192.168.1.20:5556``; on an encrypted
    network prefix the peer's id (``ID@tcp://...``) so its allowlisted key is used."""
    peer_networks: tuple[str, ...] = ()
    """Link only to peers whose advertised addresses lie in these networks (CIDR, e.g.
    ``10.0.0.0/8``); empty: anywhere. Keeps a hostile peer exchange from pointing the node
    at hosts outside the LAN."""
    domain: tuple[str, ...] = ()
    """Domains joined from the start, besides those the learner's affinity selects."""
    heartbeat_interval: float = 1.0
    """Seconds between two heartbeats of this node."""
    suspect_after: float = 5.0
    """Seconds of silence after which a peer is suspect."""
    dead_after: float = 30.0
    """Seconds of silence after which a peer is dead: it leaves every mesh."""
    rejoin_heartbeats: int = 3
    """Heartbeats in a row that bring a dead peer back (one stray packet does not)."""
    beacon: bool = False
    """Discover peers by UDP beacon on the LAN."""
    beacon_port: int = 5670
    """UDP port of the beacons."""
    beacon_interval: float = 1.0
    """Seconds between two beacons."""
    beacon_address: str = "255.255.255.255"
    """Where beacons are sent: the limited broadcast, or a subnet's (e.g. ``192.168.1.255``)."""
    keys: Path | None = None
    """CurveZMQ and origin-signing keys (``metamesh keys generate``): with them every hop is
    encrypted, only allowlisted peers connect, and every message must carry its author's signature."""
    max_clock_skew: float = 60.0
    """Refuse live messages created more than this many seconds in the future."""
    max_message_age: float = 300.0
    """Refuse live messages created longer ago than this many seconds (snapshots carry old
    state by design and are exempt)."""
    replay_window: int = 4096
    """Sequence numbers per sender below its highest one still accepted once (out of order)."""
    quarantine_above: float = 8.0
    """Quarantine a peer whose misbehaviour score exceeds this: its messages are neither
    merged nor relayed. Each rejected, invalid or outlier message adds 1; scores halve every
    ``score_half_life`` seconds."""
    quarantine_below: float = 2.0
    """Let a quarantined peer back once its score has decayed below this."""
    score_half_life: float = 60.0
    """Seconds for a peer's misbehaviour score to halve."""
    checkpoint_interval: float = 10.0
    """Seconds between checkpoints of the learner and the node's state."""
    max_peers: int = 64
    """Peers whose liveness is tracked at most (addresses of four times as many are remembered)."""
    send_hwm: int = 1000
    """ZeroMQ send high-water mark: messages queued per peer before dropping."""
    recv_hwm: int = 1000
    """ZeroMQ receive high-water mark."""
    domain_enter: float = 0.05
    """Join a domain when the learner's affinity rises above this."""
    domain_exit: float = 0.02
    """Leave a domain only when the affinity falls below this, after ``domain_dwell`` seconds."""
    domain_dwell: float = 30.0
    """Seconds in a domain before the node may leave it."""
    mesh_d: int = 6
    """Mesh peers kept per domain, between ``mesh_d_lo`` and ``mesh_d_hi`` (gossipsub's D)."""
    mesh_d_lo: int = 4
    """Graft more mesh peers below this many."""
    mesh_d_hi: int = 8
    """Prune mesh peers above this many."""
    prune_backoff: float = 60.0
    """Seconds a pruned peer waits before grafting again."""
    lazy_relay_bytes: int = 65_536
    """Relay learner messages larger than this by an ``ihave`` announcement that peers lacking
    the message fetch from, instead of forwarding the bytes (0: always forward the bytes)."""
    learner: str = "none"
    """What this node learns: none, prompts, evolve, experts, braid (torch), coordinator."""
    llm: str = "sim"
    """LLM of the prompts and evolve learners: ``sim``, ``ollama:MODEL`` or ``openai:URL:MODEL``."""
    random_seed: int = 0
    """Random seed of the learner."""
    arm: str = "federated"
    """Prompt learner: ``federated`` (share and merge), ``local`` (learn alone) or ``random``."""
    weights: str = ""
    """Prompt learner: category mix of the node's questions, e.g. ``math=0.4,art=0.4,history=0.2``."""
    episodes: int = 0
    """Stop learning after this many questions (prompts) or training rounds (experts); 0: never."""
    eval_every: int = 50
    """Prompts learner: evaluate on held-out questions every this many episodes."""
    eval_size: int = 20
    """Held-out questions per category for each evaluation."""
    pace: float = 0.0
    """Seconds between learning steps (a simulated LLM answers at once; a real one does not)."""
    wait_peers: int = 0
    """Start learning once this many peers are alive (or after 30 s): a fair start for experiments."""
    dataset: str = ""
    """The learner's own data: JSONL or CSV questions for prompts (default: the built-in trivia
    set); CSV or NPZ features and targets for experts (default: a synthetic task of the domain)."""
    share_domain: str = ""
    """Experts learner: exchange weights in this domain instead of the data's (one name for
    every node gives a single global average)."""
    part: int = 0
    """Experts learner, synthetic data: which region of the domain this node samples."""
    regions: int = 4
    """Experts learner, synthetic data: regions of the domain's input space; set it to the
    number of nodes per domain when that is below 4, so together they cover the domain."""
    samples: int = 128
    """Experts learner, synthetic data: training samples of this node."""
    experts: int = 4
    """Experts learner: experts in the mixture."""
    fedprox_mu: float = 0.0
    """Experts learner: FedProx proximal weight; > 0 keeps local training near the last merge."""
    frozen: tuple[str, ...] = ()
    """Experts learner: parameter-name prefixes neither trained nor shared, e.g. ``gate``."""
    dp_clip: float = 0.0
    """Experts learner: clip each shared update to this L2 norm (0: privacy off)."""
    dp_noise: float = 0.0
    """Experts learner: Gaussian noise std as a multiple of ``dp_clip``."""
    dp_delta: float = 1e-5
    """Experts learner: the delta at which the privacy budget epsilon is reported."""
    aggregation: str = "fedavg"
    """Experts learner: how peers' weights are combined: fedavg, trimmed_mean, median, krum."""
    norm_factor: float = 3.0
    """Experts learner: reject a peer's weights whose norm is above this many times the median
    norm (0: off)."""
    min_cosine: float = -1.0
    """Experts learner: reject a peer's weights whose cosine similarity to the coordinate-wise
    median of all weights at hand is below this (-1: off; 0.05 catches sign-flipped and random
    weights and kept every honest node of the synthetic domains)."""
    drift_at: int = 0
    """Prompts learner, for robustness drills only: from this episode on, choose strategies at
    random, so the node's own monitor and its peers see a behaviour change."""
    poison: str = ""
    """Experts learner, for robustness drills only: publish corrupted weights (scale, flip, nan,
    random, or cycle through them) so a test network shows what its defences catch."""
    pool: str = "sim"
    """Braid learner: the model pool, ``sim`` (the simulated pool) or a TOML/JSON file of descriptors."""
    task_mix: str = ""
    """Braid learner: task types of this node's stream, e.g. ``code=0.6,qa=0.2,multi=0.2``
    (default: code, math, medical, qa and multi evenly)."""
    budgets: str = "1.5,4,10"
    """Braid learner: compute budgets of tasks (pool cost units per task), drawn evenly."""
    latency_limit: float = 3000.0
    """Braid learner: the latency limit of tasks, milliseconds."""
    tasks_per_round: int = 64
    """Braid learner: tasks between two exchanges of the policy with the domain."""
    meta_interval: float = 1.0
    """Coordinator: seconds between meta-engine rounds (a broadcast when something changed)."""
    meta_keepalive: int = 10
    """Coordinator: rebroadcast the current meta-parameters after this many quiet rounds."""
    reptile_step: float = 0.5
    """Coordinator: how far a domain's initial weights move towards its average each round."""
    memory_total: int = 100_000
    """Coordinator: insights kept in all (oldest dropped first)."""
    memory_per_domain: int = 20_000
    """Coordinator: insights kept per domain."""
    memory_per_client: int = 500
    """Coordinator: insights kept per client node."""
    metrics_port: int = 0
    """HTTP port for Prometheus metrics at /metrics; 0 turns it off, -1 picks a free port."""
    limits: Limits = field(default=LAN)
    """Size caps of messages and arrays; they follow the profile."""

    def __post_init__(self) -> None:
        if self.profile not in PROFILE_DELTAS:
            raise ConfigError(f"unknown profile {self.profile!r}; choose from {', '.join(PROFILE_DELTAS)}")
        if not 0 < self.heartbeat_interval < self.suspect_after < self.dead_after:
            raise ConfigError(
                "need 0 < heartbeat_interval < suspect_after < dead_after, got "
                f"{self.heartbeat_interval}, {self.suspect_after}, {self.dead_after}"
            )
        if not 0 <= self.domain_exit < self.domain_enter:
            raise ConfigError(
                f"need 0 <= domain_exit < domain_enter (a gap, so membership does not flap), got "
                f"{self.domain_exit} and {self.domain_enter}"
            )
        if not 0 <= self.quarantine_below < self.quarantine_above:
            raise ConfigError(
                "need 0 <= quarantine_below < quarantine_above, got "
                f"{self.quarantine_below} and {self.quarantine_above}"
            )
        for key in ("max_clock_skew", "max_message_age", "score_half_life"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key} must be > 0, got {getattr(self, key)}")
        if self.replay_window < 1:
            raise ConfigError(f"replay_window must be >= 1, got {self.replay_window}")
        for seed in self.seed:
            try:
                split_tcp(seed.rpartition("@")[2])
            except ValueError as exc:
                raise ConfigError(
                    f"seed {seed!r}: {exc}; expected tcp://HOST:PORT or ID@tcp://HOST:PORT"
                ) from None
        for network in self.peer_networks:
            try:
                ipaddress.ip_network(network, strict=False)
            except ValueError:
                raise ConfigError(f"peer network {network!r} is not a network such as 10.0.0.0/8") from None
        if "://" in self.advertise or "/" in self.advertise:
            raise ConfigError(f"advertise takes a host name or address, not {self.advertise!r}")
        for key in ("pub_port", "router_port", "beacon_port", "metrics_port"):
            port = getattr(self, key)
            if not (-1 if key == "metrics_port" else 0) <= port <= 65535:
                raise ConfigError(f"{key} {port} is out of range: a TCP/UDP port, 0 to 65535")

    @property
    def advertised_host(self) -> str:
        if self.advertise:
            return self.advertise
        return {"0.0.0.0": "127.0.0.1", "*": "127.0.0.1", "::": "::1"}.get(self.host, self.host)


PROFILE_DELTAS: Mapping[str, Mapping[str, Any]] = {
    "lan": {},
    "local": {
        "heartbeat_interval": 0.2,
        "suspect_after": 1.0,
        "dead_after": 3.0,
        "rejoin_heartbeats": 2,
        "checkpoint_interval": 2.0,
        "domain_dwell": 2.0,
        "prune_backoff": 5.0,
    },
    "edge": {
        "max_peers": 16,
        "send_hwm": 100,
        "recv_hwm": 100,
        "checkpoint_interval": 30.0,
        "limits": EDGE,
    },
}

PROFILES: Mapping[str, NodeConfig] = {
    name: NodeConfig(profile=name, **delta) for name, delta in PROFILE_DELTAS.items()
}

_FIELDS = {f.name: f for f in fields(NodeConfig)}

#: Settings that no TOML key, variable or flag sets, and why.
NOT_SETTABLE: Mapping[str, str] = {"limits": "size caps follow the profile (edge has smaller ones)"}

#: Settings with a fixed set of values.
CHOICES: Mapping[str, tuple[str, ...]] = {
    "profile": tuple(PROFILE_DELTAS),
    "arm": ("federated", "local", "random"),
    "aggregation": ("fedavg", "trimmed_mean", "median", "krum"),
    "poison": ("", *POISONS),
}

#: Every setting a TOML key, a ``METAMESH_*`` variable or a flag can set.
SETTINGS = tuple(name for name in _FIELDS if name not in NOT_SETTABLE)


def _coerce(name: str, value: Any, source: str) -> Any:
    default = getattr(PROFILES["lan"], name)
    return coerce(name, value, default=default, choices=CHOICES.get(name), source=source)


def _current(key: str, source: str) -> str:
    """The current name of ``key``, warning about an old one; ConfigError names the closest."""
    if key in RENAMED:
        log.warning("%s: %r is renamed %r; the old name will stop working", source, key, RENAMED[key])
        return RENAMED[key]
    if key in NOT_SETTABLE:
        raise ConfigError(f"{source}: {key} cannot be set: {NOT_SETTABLE[key]}")
    if key not in SETTINGS:
        raise ConfigError(f"{source}: unknown setting {key!r}{closest(key, SETTINGS)}")
    return key


def _from_env(env: Mapping[str, str]) -> dict[str, Any]:
    """The settings given as ``METAMESH_*`` variables; an unknown one is reported, not fatal."""
    known = {env_name(name): name for name in SETTINGS if name != "profile"}
    values: dict[str, Any] = {}
    for var, value in sorted(env.items()):
        if not var.startswith(ENV_PREFIX) or var in OTHER_ENV or var == env_name("profile"):
            continue
        old = var.removeprefix(ENV_PREFIX).lower()
        if var in known:
            values[known[var]] = _coerce(known[var], value, var)
        elif old in RENAMED:
            name = _current(old, var)
            values.setdefault(name, _coerce(name, value, var))
        else:
            log.warning("%s is not a metamesh setting, ignored%s", var, closest(var, [*known, *OTHER_ENV]))
    return values


def load_config(
    *,
    profile: str | None = None,
    path: Path | None = None,
    env: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> NodeConfig:
    """Resolve a config: profile, then TOML ``[node]`` table, then ``METAMESH_*``, then overrides.

    ``overrides`` holds command-line flags by setting name; ``None`` values are ignored.
    Raises :class:`ConfigError` for an unknown setting or a bad value; logs a warning for an
    old setting name and for an unknown ``METAMESH_*`` variable.
    """
    env = os.environ if env is None else env
    values: dict[str, Any] = {}
    table: dict[str, Any] = {}
    if path is not None:
        try:
            with path.open("rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise ConfigError(f"cannot read config {path}: {exc}") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: {exc}") from exc
        node_table = doc.get("node", doc)
        if not isinstance(node_table, dict):
            raise ConfigError(f"{path}: [node] must be a table")
        table = flatten_table(node_table, str(path))  # [node.network] ... sub-tables as flat keys
    sources = ((profile, "--profile"), (env.get(env_name("profile")), env_name("profile")))
    chosen, source = next(((v, s) for v, s in sources if v), (table.get("profile") or "lan", str(path)))
    _coerce("profile", chosen, source)
    for key, value in table.items():
        if key != "profile":
            name = _current(key, str(path))
            coerced = _coerce(name, value, str(path))
            values[name] = values.get(name, coerced) if key in RENAMED else coerced  # the new name wins
    values.update(_from_env(env))
    for key, value in (overrides or {}).items():
        if value is not None:
            if key not in SETTINGS:
                raise ConfigError(f"unknown setting {key!r}{closest(key, SETTINGS)}")
            values[key] = _coerce(key, value, flag_name(key))
    return replace(PROFILES[chosen], **values)

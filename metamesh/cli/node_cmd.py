"""``metamesh node``: run one node until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from metamesh.cli import exitcodes
from metamesh.errors import ConfigError, HomeInUse, MetameshError
from metamesh.node.config import POISONS, PROFILES, SETTINGS, NodeConfig, load_config

if TYPE_CHECKING:
    from metamesh.node.runtime import Node

#: Command-line destinations that are node settings (``profile`` is passed on its own). Every
#: flag of a setting is ``--`` plus its name with dashes, as docs/settings.md lists them.
NODE_SETTINGS = frozenset(SETTINGS) - {"profile"}

HELP = "run a node on this host (LAN hosts, edge devices, or one process of a local cluster)"

DESCRIPTION = """\
Run one metamesh node until Ctrl-C or SIGTERM; it then says bye to its peers and
writes a checkpoint, so a restart resumes where it stopped.

Settings come from the profile, then --config FILE ([node] table), then
METAMESH_* environment variables (e.g. METAMESH_SEED), then these flags.

Each node needs its own --home (its id, sequence numbers, checkpoint, events): a
node started on a home another process holds stops at once, naming that PID.

examples:
  metamesh node --home ./alpha --profile lan --host 0.0.0.0 --beacon   # find peers by UDP beacon
  metamesh node --home ./m1 --seed tcp://192.168.1.20:5556 --domain math  # join through a known peer
  metamesh node --home ./n1 --profile local --learner prompts  # one node of a local cluster
  metamesh node --home ./n2 --profile local --learner prompts  # ... and another beside it
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "node", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_network_options(p)
    add_learner_options(p)
    p.set_defaults(run=run)


def add_network_options(p: argparse.ArgumentParser) -> None:
    """Where a node lives and how it finds and talks to peers (shared with ``metamesh coordinator``)."""
    p.add_argument("--config", type=Path, help="TOML file with a [node] table")
    p.add_argument("--profile", choices=sorted(PROFILES), help="named defaults (default: lan)")
    p.add_argument("--home", type=Path, help="node directory: identity, keys, checkpoints, events")
    p.add_argument("--name", help="node id to use when the directory is new")
    p.add_argument("--host", help="address to bind (0.0.0.0 for every IPv4 interface; IPv6 too: ::1, ::)")
    p.add_argument("--advertise", help="address peers should use to reach this node")
    p.add_argument("--pub-port", type=int, help="PUB port (0 = any free port)")
    p.add_argument("--router-port", type=int, help="ROUTER port (0 = any free port)")
    p.add_argument(
        "--seed",
        action="append",
        metavar="ENDPOINT",
        help="ROUTER endpoint of a known peer, e.g. tcp://10.0.0.2:5556; ID@ENDPOINT with --keys "
        "(repeatable)",
    )
    p.add_argument(
        "--domain",
        action="append",
        metavar="NAME",
        help="domain to join from the start (repeatable)",
    )
    p.add_argument(
        "--beacon", action="store_true", default=None, help="discover peers by UDP beacon on the LAN"
    )
    p.add_argument("--beacon-port", type=int, help="UDP beacon port (default 5670)")
    p.add_argument(
        "--beacon-address", help="where to send beacons (default 255.255.255.255; a subnet broadcast)"
    )
    p.add_argument(
        "--keys",
        type=Path,
        help="keys directory: encrypt with CurveZMQ, admit allowlisted peers only, "
        "and sign every message and require its author's signature",
    )
    s = p.add_argument_group("defences against broken and hostile peers")
    s.add_argument(
        "--max-clock-skew", type=float, help="refuse messages from further in the future (default 60 s)"
    )
    s.add_argument(
        "--max-message-age", type=float, help="refuse live messages older than this (default 300 s)"
    )
    s.add_argument(
        "--quarantine-above",
        type=float,
        help="quarantine a peer past this score; each bad message adds 1 (default 8)",
    )
    s.add_argument("--quarantine-below", type=float, help="let it back below this score (default 2)")
    s.add_argument("--score-half-life", type=float, help="seconds for a peer's score to halve (default 60)")
    s.add_argument(
        "--peer-networks",
        metavar="CIDRS",
        help="link only to peers advertising addresses in these networks, e.g. 10.0.0.0/8,127.0.0.0/8 "
        "(default: anywhere)",
    )
    p.add_argument(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at http://HOST:PORT/metrics (-1: any free port)",
    )
    p.add_argument("--mesh-d", type=int, help="mesh peers to keep per domain (default 6)")
    p.add_argument("--mesh-d-lo", type=int, help="graft below this many mesh peers (default 4)")
    p.add_argument("--mesh-d-hi", type=int, help="prune above this many mesh peers (default 12)")
    p.add_argument(
        "--ready-json", action="store_true", help="print one JSON line with the endpoints once ready"
    )
    add_tuning_options(p)


def add_tuning_options(p: argparse.ArgumentParser) -> None:
    """Timings and limits a profile sets; rarely given by hand."""
    t = p.add_argument_group("timings and limits (the profile's defaults suit most networks)")
    for flag, kind, text in (
        ("--heartbeat-interval", float, "seconds between two heartbeats (lan 1, local 0.2)"),
        ("--suspect-after", float, "seconds of silence before a peer is suspect (lan 5, local 1)"),
        ("--dead-after", float, "seconds of silence before a peer is dead (lan 30, local 3)"),
        ("--rejoin-heartbeats", int, "heartbeats in a row that bring a dead peer back (default 3)"),
        ("--beacon-interval", float, "seconds between two beacons (default 1)"),
        ("--replay-window", int, "sequence numbers per sender still accepted out of order (default 4096)"),
        ("--checkpoint-interval", float, "seconds between checkpoints (lan 10, local 2, edge 30)"),
        ("--max-peers", int, "peers whose liveness is tracked at most (lan 64, edge 16)"),
        ("--send-hwm", int, "messages queued per peer before dropping (lan 1000, edge 100)"),
        ("--recv-hwm", int, "messages queued on receipt before dropping (lan 1000, edge 100)"),
        ("--domain-dwell", float, "seconds in a domain before the node may leave it (lan 30, local 2)"),
        ("--prune-backoff", float, "seconds a pruned mesh peer waits to graft again (lan 60, local 5)"),
        ("--lazy-relay-bytes", int, "announce larger messages instead of relaying them (default 65536)"),
    ):
        t.add_argument(flag, type=kind, help=text)


def add_learner_options(p: argparse.ArgumentParser) -> None:
    """What a node learns and how (``metamesh node`` only)."""
    p.add_argument(
        "--learner",
        help="what this node learns: none, prompts (strategy per category), evolve (prompts that "
        "rewrite themselves), experts (torch), braid (torch: which LLMs to combine), or the name "
        "of any installed learner plugin (entry-point group metamesh.learners)",
    )
    p.add_argument("--llm", help="LLM for the prompts learner: sim, ollama:MODEL, openai:URL:MODEL")
    p.add_argument("--random-seed", type=int, help="random seed of the learner (default 0)")
    p.add_argument("--seed-value", type=int, dest="random_seed", action=_Renamed, help=argparse.SUPPRESS)
    p.add_argument("--arm", choices=["federated", "local", "random"], help="prompts learner: how it learns")
    p.add_argument(
        "--weights", help="prompts learner: question mix, e.g. math=0.4,art=0.4 (rest shared evenly)"
    )
    p.add_argument(
        "--episodes", type=int, help="stop after this many questions (prompts) or rounds (experts)"
    )
    p.add_argument(
        "--eval-every", type=int, help="prompts learner: evaluate on held-out questions this often"
    )
    p.add_argument(
        "--eval-size", type=int, help="prompts learner: held-out questions per category (default 20)"
    )
    p.add_argument(
        "--dataset",
        help="the learner's data: a built-in question set (trivia, commonsense, sentiment; join them "
        "with +) or a JSONL/CSV file of questions (prompts, evolve); CSV/NPZ features+target (experts)",
    )
    p.add_argument(
        "--drift-at",
        type=int,
        help="prompts learner, robustness drills only: choose strategies at random from this episode "
        "on, so the node's monitor and its peers see a behaviour change",
    )
    x = p.add_argument_group("experts learner (needs torch: pip install 'metamesh[torch]')")
    x.add_argument("--share-domain", help="exchange weights in this domain instead of the data's")
    x.add_argument("--part", type=int, help="synthetic data: which region of the domain to sample")
    x.add_argument("--regions", type=int, help="synthetic data: regions per domain (default 4)")
    x.add_argument("--samples", type=int, help="synthetic data: training samples (default 128)")
    x.add_argument("--experts", type=int, help="experts in the mixture (default 4)")
    x.add_argument("--fedprox-mu", type=float, help="FedProx proximal weight (default 0: off)")
    x.add_argument("--frozen", help="comma-separated parameter prefixes to neither train nor share")
    x.add_argument("--dp-clip", type=float, help="clip each shared update to this L2 norm (0: off)")
    x.add_argument("--dp-noise", type=float, help="Gaussian noise multiplier on the clipped update")
    x.add_argument("--dp-delta", type=float, help="delta at which epsilon is reported (default 1e-5)")
    x.add_argument(
        "--aggregation",
        choices=["fedavg", "trimmed_mean", "median", "krum"],
        help="how peers' weights are combined (default fedavg)",
    )
    x.add_argument(
        "--norm-factor",
        type=float,
        help="reject weights with a norm above this x the median (default 3; 0: off)",
    )
    x.add_argument(
        "--min-cosine",
        type=float,
        help="reject weights pointing away from the coordinate-wise median of all weights: "
        "cosine similarity below this (default -1: off; 0.05 catches sign-flipped and random weights)",
    )
    x.add_argument(
        "--poison",
        choices=list(POISONS),
        help="robustness drills only: publish corrupted weights, to see a network's defences work",
    )
    b = p.add_argument_group(
        "braid learner (needs torch): which models of a pool to combine, and how; it federates "
        "like experts (--share-domain, --aggregation, --dp-clip ... apply)"
    )
    b.add_argument("--pool", help="model pool: sim (default; offline) or a TOML/JSON file of descriptors")
    b.add_argument("--task-mix", help="task types of the stream, e.g. code=0.6,qa=0.2,multi=0.2")
    b.add_argument("--budgets", help="compute budgets of tasks, in pool cost units (default 1.5,4,10)")
    b.add_argument("--latency-limit", type=float, help="latency limit of tasks, ms (default 3000)")
    b.add_argument("--tasks-per-round", type=int, help="tasks between policy exchanges (default 64)")
    p.add_argument("--domain-enter", type=float, help="join a domain above this affinity (default 0.05)")
    p.add_argument("--domain-exit", type=float, help="leave a domain below this affinity (default 0.02)")
    p.add_argument("--pace", type=float, help="seconds between learning steps (default 0)")
    p.add_argument("--wait-peers", type=int, help="start learning once this many peers are alive")


class _Renamed(argparse.Action):
    """An old flag that still works, with a warning naming the new one (its ``dest``)."""

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: object,
        option_string: str | None = None,
    ) -> None:
        new = "--" + self.dest.replace("_", "-")
        sys.stderr.write(f"metamesh: {option_string} is renamed {new}; the old name will stop working\n")
        setattr(namespace, self.dest, values)


def run(args: argparse.Namespace, *, command: str = "node") -> int:
    overrides = {k: v for k, v in vars(args).items() if k in NODE_SETTINGS}
    try:
        config = load_config(profile=args.profile, path=args.config, overrides=overrides)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.CONFIG
    try:
        return asyncio.run(_serve(config, ready_json=args.ready_json))
    except HomeInUse as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.HOME_IN_USE
    except ConfigError as exc:  # the learner the config names is unknown or refuses its settings
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.CONFIG
    except MetameshError as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.FAILURE


async def _serve(config: NodeConfig, *, ready_json: bool) -> int:
    from metamesh.node.run import run_node

    def ready(node: Node) -> None:
        if not ready_json:
            return
        line = {
            "event": "ready",
            "node": node.id,
            "pub": node.pub_endpoint,
            "router": node.router_endpoint,
            "metrics_port": node.metrics_port,
        }
        sys.stdout.write(json.dumps(line) + "\n")
        sys.stdout.flush()

    await run_node(config, ready=ready)
    return exitcodes.OK

"""``metamesh node``: run one node until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import weakref
from pathlib import Path
from typing import TYPE_CHECKING, Any

from metamesh.cli import exitcodes
from metamesh.errors import ConfigError, HomeInUse, MetameshError
from metamesh.node.config import POISONS, PROFILES, SETTINGS, NodeConfig, load_config
from metamesh.node.sections import SECTION_TITLES, SECTIONS, section_of

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
  metamesh node --home ./g1 --gateway 127.0.0.1:8080 --backend ollama:llama3.2  # learns and serves apps
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "node", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    from metamesh.cli.gateway_cmd import add_gateway_options  # gateway_cmd builds on this module

    add_network_options(p)
    add_learner_options(p)
    add_gateway_options(p, default_address=None)
    p.set_defaults(run=run)


def add_network_options(p: argparse.ArgumentParser) -> None:
    """Where a node lives and how it finds and talks to peers (shared with ``metamesh coordinator``)."""
    g = groups(p)
    g.add("--config", type=Path, help="TOML file with a [node] table")
    g.add("--profile", choices=sorted(PROFILES), help="named defaults (default: lan)")
    g.add("--home", type=Path, help="node directory: identity, keys, checkpoints, events")
    g.add("--name", help="node id to use when the directory is new")
    g.add("--host", help="address to bind (0.0.0.0 for every IPv4 interface; IPv6 too: ::1, ::)")
    g.add("--advertise", help="address peers should use to reach this node")
    g.add("--pub-port", type=int, help="PUB port (0 = any free port)")
    g.add("--router-port", type=int, help="ROUTER port (0 = any free port)")
    g.add(
        "--seed",
        action="append",
        metavar="ENDPOINT",
        help="ROUTER endpoint of a known peer, e.g. tcp://10.0.0.2:5556; ID@ENDPOINT with --keys "
        "(repeatable)",
    )
    g.add(
        "--domain",
        action="append",
        metavar="NAME",
        help="domain to join from the start (repeatable)",
    )
    g.add("--beacon", action="store_true", default=None, help="discover peers by UDP beacon on the LAN")
    g.add("--beacon-port", type=int, help="UDP beacon port (default 5670)")
    g.add("--beacon-address", help="where to send beacons (default 255.255.255.255; a subnet broadcast)")
    g.add(
        "--keys",
        type=Path,
        help="keys directory: encrypt with CurveZMQ, admit allowlisted peers only, "
        "and sign every message and require its author's signature",
    )
    g.add("--max-clock-skew", type=float, help="refuse messages from further in the future (default 60 s)")
    g.add("--max-message-age", type=float, help="refuse live messages older than this (default 300 s)")
    g.add(
        "--quarantine-above",
        type=float,
        help="quarantine a peer past this score; each bad message adds 1 (default 8)",
    )
    g.add("--quarantine-below", type=float, help="let it back below this score (default 2)")
    g.add("--score-half-life", type=float, help="seconds for a peer's score to halve (default 60)")
    g.add(
        "--peer-networks",
        metavar="CIDRS",
        help="link only to peers advertising addresses in these networks, e.g. 10.0.0.0/8,127.0.0.0/8 "
        "(default: anywhere)",
    )
    g.add(
        "--metrics-port",
        type=int,
        help="serve Prometheus metrics at http://HOST:PORT/metrics (-1: any free port)",
    )
    g.add("--mesh-d", type=int, help="mesh peers to keep per domain (default 6)")
    g.add("--mesh-d-lo", type=int, help="graft below this many mesh peers (default 4)")
    g.add("--mesh-d-hi", type=int, help="prune above this many mesh peers (default 12)")
    g.add("--ready-json", action="store_true", help="print one JSON line with the endpoints once ready")
    add_tuning_options(p)


def add_tuning_options(p: argparse.ArgumentParser) -> None:
    """Timings and limits a profile sets; rarely given by hand."""
    g = groups(p)
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
        g.add(flag, type=kind, help=text)


def add_learner_options(p: argparse.ArgumentParser) -> None:
    """What a node learns and how (``metamesh node`` only)."""
    g = groups(p)
    g.add(
        "--learner",
        help="what this node learns: none, prompts (strategy per category), evolve (prompts that "
        "rewrite themselves), experts (torch), braid (torch: which LLMs to combine), or the name "
        "of any installed learner plugin (entry-point group metamesh.learners)",
    )
    g.add("--llm", help="LLM for the prompts learner: sim, ollama:MODEL, openai:URL:MODEL")
    g.add("--random-seed", type=int, help="random seed of the learner (default 0)")
    g.add("--seed-value", type=int, dest="random_seed", action=_Renamed, help=argparse.SUPPRESS)
    g.add("--arm", choices=["federated", "local", "random"], help="prompts learner: how it learns")
    g.add("--weights", help="prompts learner: question mix, e.g. math=0.4,art=0.4 (rest shared evenly)")
    g.add("--episodes", type=int, help="stop after this many questions (prompts) or rounds (experts)")
    g.add("--eval-every", type=int, help="prompts learner: evaluate on held-out questions this often")
    g.add("--eval-size", type=int, help="prompts learner: held-out questions per category (default 20)")
    g.add(
        "--dataset",
        help="the learner's data: a built-in question set (trivia, commonsense, sentiment; join them "
        "with +) or a JSONL/CSV file of questions (prompts, evolve); CSV/NPZ features+target (experts)",
    )
    g.add(
        "--drift-at",
        type=int,
        help="prompts learner, robustness drills only: choose strategies at random from this episode "
        "on, so the node's monitor and its peers see a behaviour change",
    )
    g.add("--share-domain", help="exchange weights in this domain instead of the data's")
    g.add("--part", type=int, help="synthetic data: which region of the domain to sample")
    g.add("--regions", type=int, help="synthetic data: regions per domain (default 4)")
    g.add("--samples", type=int, help="synthetic data: training samples (default 128)")
    g.add("--experts", type=int, help="experts in the mixture (default 4)")
    g.add("--fedprox-mu", type=float, help="FedProx proximal weight (default 0: off)")
    g.add("--frozen", help="comma-separated parameter prefixes to neither train nor share")
    g.add("--dp-clip", type=float, help="clip each shared update to this L2 norm (0: off)")
    g.add("--dp-noise", type=float, help="Gaussian noise multiplier on the clipped update")
    g.add("--dp-delta", type=float, help="delta at which epsilon is reported (default 1e-5)")
    g.add(
        "--aggregation",
        choices=["fedavg", "trimmed_mean", "median", "krum"],
        help="how peers' weights are combined (default fedavg)",
    )
    g.add(
        "--norm-factor",
        type=float,
        help="reject weights with a norm above this x the median (default 3; 0: off)",
    )
    g.add(
        "--min-cosine",
        type=float,
        help="reject weights pointing away from the coordinate-wise median of all weights: "
        "cosine similarity below this (default -1: off; 0.05 catches sign-flipped and random weights)",
    )
    g.add(
        "--poison",
        choices=list(POISONS),
        help="robustness drills only: publish corrupted weights, to see a network's defences work",
    )
    g.add("--pool", help="model pool: sim (default; offline) or a TOML/JSON file of descriptors")
    g.add("--task-mix", help="task types of the stream, e.g. code=0.6,qa=0.2,multi=0.2")
    g.add("--budgets", help="compute budgets of tasks, in pool cost units (default 1.5,4,10)")
    g.add("--latency-limit", type=float, help="latency limit of tasks, ms (default 3000)")
    g.add("--tasks-per-round", type=int, help="tasks between policy exchanges (default 64)")
    g.add("--domain-enter", type=float, help="join a domain above this affinity (default 0.05)")
    g.add("--domain-exit", type=float, help="leave a domain below this affinity (default 0.02)")
    g.add("--pace", type=float, help="seconds between learning steps (default 0)")
    g.add("--wait-peers", type=int, help="start learning once this many peers are alive")


class SectionGroups:
    """A parser's argument groups, one per settings section, in the order of ``SECTIONS``.

    :meth:`add` puts a setting's flag in its section's group and any other flag in the
    parser's general options, so ``--help`` lists the settings by section.
    """

    def __init__(self, parser: argparse.ArgumentParser) -> None:
        self.parser = parser
        self.sections = {name: parser.add_argument_group(SECTION_TITLES[name]) for name in SECTIONS}

    def add(self, *flags: str, **kwargs: Any) -> None:
        """``add_argument`` in the group of the setting the flag sets."""
        dest = kwargs.get("dest") or flags[0].lstrip("-").replace("-", "_")
        target = self.sections[section_of(dest)] if dest in SETTINGS else self.parser
        target.add_argument(*flags, **kwargs)


_GROUPS: weakref.WeakKeyDictionary[argparse.ArgumentParser, SectionGroups] = weakref.WeakKeyDictionary()


def groups(parser: argparse.ArgumentParser) -> SectionGroups:
    """The section groups of ``parser``, made on first use."""
    found = _GROUPS.get(parser)
    if found is None:
        found = _GROUPS[parser] = SectionGroups(parser)
    return found


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
        if getattr(args, "gateway", None):
            if (overrides.get("learner") or "prompts") != "prompts":
                raise ConfigError("--gateway serves the prompts learner's decisions; use --learner prompts")
            overrides["learner"] = "prompts"
        config = load_config(profile=args.profile, path=args.config, overrides=overrides)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.CONFIG
    if getattr(args, "gateway", None):
        from metamesh.cli.gateway_cmd import launch

        return launch(args, config, train=True, command=command)
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

"""``metamesh gateway``: a node with an OpenAI-compatible HTTP face that learns from its users' ratings."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from metamesh.cli import exitcodes
from metamesh.cli.node_cmd import NODE_SETTINGS, add_network_options, groups
from metamesh.errors import HomeInUse, MetameshError
from metamesh.node.config import NodeConfig, load_config

if TYPE_CHECKING:
    from metamesh.gateway.server import Gateway
    from metamesh.node.runtime import Node

HELP = "serve an OpenAI-compatible API that learns how to ask your models from your users' ratings"

DESCRIPTION = """\
Run a node with an OpenAI-compatible HTTP API in front of your models. Point any
OpenAI client at http://HOST:PORT/v1 and ask for the model "metamesh": for each
request the node picks a prompt strategy for the request's category (from
metadata.category, the X-Metamesh-Category header, or its own classifier),
applies it to the user's last message, calls a backend, and returns the answer
with a decision id (the X-Metamesh-Decision header and a "metamesh" object in
the body). Rate the answer with POST /v1/feedback and the node learns; the
peers of its domains learn too, through gossip of Q-tables (never your prompts
or answers). Ask for a backend's own model name to bypass the learning.

With several backends, the node also learns which one answers each category
best within a cost budget (--backend-cost NAME=COST, --budget, or a request's
metadata.budget): a bandit over the backends' ratings per category.

Endpoints: POST /v1/chat/completions (stream or not), GET /v1/models,
POST /v1/feedback {"decision_id", "score": 0..1 | "thumbs": "up"|"down" |
"reference": "right answer"}, GET /metrics (Prometheus), GET /healthz.

Beyond loopback a keys file is required (one "NAME KEY" per line; clients send
Authorization: Bearer KEY; `metamesh keys api` makes one). Decisions await
feedback for --decision-ttl seconds and survive a restart (they are checkpointed
with the node's state); an accepted rating is on disk before its 200 (a journal
in --home, replayed on restart), so a kill loses none.

examples:
  metamesh gateway --home ./gw --backend local                      # the bundled SmolLM2
  metamesh gateway --home ./gw --backend ollama:llama3.2 --gateway 127.0.0.1:8080
  metamesh gateway --home ./gw --backend ollama:llama3.2:1b --backend ollama:qwen2.5:7b \\
      --backend-cost llama3.2:1b=1 --backend-cost qwen2.5:7b=4 --budget 5
  metamesh gateway --home ./gw --backend openai:http://127.0.0.1:8081/v1:qwen \\
      --gateway 0.0.0.0:8080 --keys-file ./api-keys --seed tcp://10.0.0.2:5556
  curl -s localhost:8080/v1/chat/completions -H 'content-type: application/json' \\
      -d '{"model": "metamesh", "messages": [{"role": "user", "content": "What is 7*6?"}]}'
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "gateway", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_gateway_options(p, default_address="127.0.0.1:8080")
    g = p.add_argument_group("gateway")
    g.add_argument(
        "--train",
        action="store_true",
        help="also learn on the node's own questions (--llm, --dataset), as `metamesh node` does",
    )
    add_network_options(p)
    lg = groups(p)
    lg.add("--llm", help="with --train: the LLM for the learner's own questions (default sim)")
    lg.add("--dataset", help="questions the classifier and --train learn from (default: built-in trivia)")
    lg.add("--random-seed", type=int, help="random seed of the learner (default 0)")
    p.set_defaults(run=run)  # fmt: skip


def add_gateway_options(p: argparse.ArgumentParser, *, default_address: str | None) -> None:
    """The gateway's flags, on ``metamesh gateway`` and on ``metamesh node`` (there, off by default)."""
    g = p.add_argument_group("gateway")
    where = "default 127.0.0.1:8080" if default_address else "default: none, no gateway"
    g.add_argument("--gateway", default=default_address, metavar="HOST:PORT",
                   help=f"serve the OpenAI-compatible API here ({where}; port 0: any free port)")  # fmt: skip
    g.add_argument(
        "--backend",
        action="append",
        default=[],
        metavar="SPEC",
        help="a model to call: openai:URL:MODEL (llama.cpp, vLLM, ...), ollama:MODEL, or local (the "
        "bundled SmolLM2 on a llama.cpp server this node starts); repeatable, the first serves 'metamesh'",
    )
    g.add_argument(
        "--backend-cost",
        action="append",
        default=[],
        metavar="NAME=COST",
        help="cost of one request to a backend (its model name), in your budget's units (default 1)",
    )
    g.add_argument(
        "--budget",
        type=float,
        help="with several backends: the most one request to 'metamesh' may cost (a request's "
        "metadata.budget overrides it); the gateway learns which backend within it users rate best",
    )
    g.add_argument(
        "--keys-file",
        type=Path,
        help="API keys, one 'NAME KEY' per line (required beyond loopback; `metamesh keys api` makes one)",
    )
    g.add_argument(
        "--exploration",
        type=float,
        default=0.05,
        help="share of requests that try another strategy than the best-rated (default 0.05)",
    )
    g.add_argument("--rate", type=float, default=50.0, help="requests a second per key (default 50; 0: none)")
    g.add_argument(
        "--backend-timeout", type=float, default=60.0, help="seconds a backend may take (default 60)"
    )
    g.add_argument(
        "--max-body", type=int, default=1 << 20, help="largest request body in bytes (default 1 MiB)"
    )
    g.add_argument(
        "--max-tokens", type=int, default=4096, help="largest max_tokens a request may ask (default 4096)"
    )
    g.add_argument(
        "--decision-ttl",
        type=float,
        default=86_400.0,
        help="seconds a decision awaits feedback (default 86400)",
    )


def _address(text: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not port.isdigit() or not host:
        raise MetameshError(f"--gateway {text!r}: expected HOST:PORT, e.g. 127.0.0.1:8080")
    return host.strip("[]"), int(port)


def _cost(text: str) -> tuple[str, float]:
    name, sep, cost = text.rpartition("=")
    try:
        value = float(cost)
    except ValueError:
        value = -1.0
    if not sep or not name or not value > 0:
        raise MetameshError(f"--backend-cost {text!r}: expected NAME=COST with COST > 0, e.g. qwen=2.5")
    return name, value


def run(args: argparse.Namespace) -> int:
    overrides = {k: v for k, v in vars(args).items() if k in NODE_SETTINGS}
    overrides["learner"] = "prompts"
    try:
        node_config = load_config(profile=args.profile, path=args.config, overrides=overrides)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh gateway: {exc}\n")
        return exitcodes.CONFIG
    return launch(args, node_config, train=args.train, command="gateway")


def launch(args: argparse.Namespace, node_config: NodeConfig, *, train: bool, command: str) -> int:
    """Run a node with the gateway ``args`` describe until SIGINT/SIGTERM; the exit code."""
    from metamesh.gateway.requests import Limits
    from metamesh.gateway.server import GatewayConfig, serve

    try:
        host, port = _address(args.gateway)
        costs = dict(_cost(c) for c in args.backend_cost)
        config = GatewayConfig(
            host=host, port=port, backends=tuple(args.backend), keys_file=args.keys_file,
            exploration=args.exploration, rate=args.rate, burst=max(2 * args.rate, 1.0),
            timeout=args.backend_timeout, decision_ttl=args.decision_ttl, train=train,
            costs=costs, budget=args.budget,
            limits=Limits(max_body_bytes=args.max_body, max_tokens=args.max_tokens),
        )  # fmt: skip
    except MetameshError as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.CONFIG

    def ready(node: Node, gateway: Gateway) -> None:
        url = f"http://{host}:{gateway.port}/v1"
        if args.ready_json:
            line = {"event": "ready", "node": node.id, "pub": node.pub_endpoint, "gateway": url,
                    "router": node.router_endpoint, "metrics_port": node.metrics_port}  # fmt: skip
            sys.stdout.write(json.dumps(line) + "\n")
            sys.stdout.flush()
        else:
            sys.stderr.write(f"metamesh {command}: serving {url} (model 'metamesh'); Ctrl-C stops\n")

    try:
        asyncio.run(serve(node_config, config, ready=ready))
    except HomeInUse as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.HOME_IN_USE
    except MetameshError as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.for_error(exc)
    return exitcodes.OK

"""``metamesh status ADDRESS``: ask a node how it is doing."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from metamesh.cli import exitcodes
from metamesh.errors import ConfigError, MetameshError
from metamesh.protocol import Status, StatusRequest

HELP = "show a running node's peers, domains, counters and learner"

DESCRIPTION = """\
Ask a node's ROUTER for its status and print it as tables (or JSON).

examples:
  metamesh status tcp://127.0.0.1:5556
  metamesh status tcp://10.0.0.2:5556 --json | jq .counters
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "status", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("address", help="the node's ROUTER endpoint, e.g. tcp://127.0.0.1:5556")
    p.add_argument("--json", action="store_true", help="print the raw report as JSON")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer (default 3)")
    p.add_argument("--keys", type=Path, dest="keys_dir", help="keys directory, for an encrypted network")
    p.add_argument("--peer", default="", help="the node's id, to find its key in keys/authorized")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.node.client import ask

    if not args.address.startswith("tcp://"):
        sys.stderr.write(
            f"metamesh status: {args.address!r} is not a tcp:// endpoint, e.g. tcp://127.0.0.1:5556\n"
        )
        return exitcodes.USAGE
    try:
        reply = asyncio.run(
            ask(
                args.address, StatusRequest(), timeout=args.timeout, keys_dir=args.keys_dir, peer_id=args.peer
            )
        )
    except TimeoutError:
        sys.stderr.write(f"metamesh status: no answer from {args.address} within {args.timeout:g} s\n")
        return exitcodes.UNREACHABLE
    except ConfigError as exc:  # a malformed address or a missing key
        sys.stderr.write(f"metamesh status: {exc}\n")
        return exitcodes.CONFIG
    except MetameshError as exc:
        sys.stderr.write(f"metamesh status: {exc}\n")
        return exitcodes.UNREACHABLE
    if not isinstance(reply.body, Status):
        sys.stderr.write(f"metamesh status: unexpected answer {reply.kind!r}\n")
        return exitcodes.FAILURE
    report = dict(reply.body.report)
    if args.json:
        sys.stdout.write(json.dumps(report, indent=2, sort_keys=True) + "\n")
    else:
        sys.stdout.write(render(report))
    return exitcodes.OK


def _table(rows: list[list[str]]) -> str:
    if not rows:
        return ""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    return "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )


def _trust(quarantined: bool, score: float | None, weight: float | None) -> str:
    """``ok``, or why a peer counts less: its misbehaviour score, its drift weight, quarantine."""
    parts = ["QUARANTINED"] if quarantined else []
    if score:
        parts.append(f"score {score:.1f}")
    if weight is not None:
        parts.append(f"weight {weight:.2f}")
    return ", ".join(parts) or "ok"


def render(report: dict[str, Any]) -> str:
    out = [
        f"node     {report.get('node')}  "
        f"(metamesh {report.get('version')}, profile {report.get('profile')})\n",
        f"pub      {report.get('pub')}\nrouter   {report.get('router')}\n",
        f"uptime   {report.get('uptime', 0):.1f} s   seq {report.get('seq')}   "
        f"domains {', '.join(report.get('domains', [])) or '-'}\n\n",
    ]
    peers = report.get("peers", {})
    quarantined = set(report.get("quarantined", []))
    scores = report.get("scores", {})
    weights = report.get("peer_weights", {})
    rows = [["PEER", "STATE", "CONNECTED", "TRUST", "DOMAINS", "PUB"]]
    for pid, p in sorted(peers.items()):
        rows.append(
            [
                pid,
                str(p.get("state")),
                "yes" if p.get("connected") else "no",
                _trust(pid in quarantined, scores.get(pid), weights.get(pid)),
                ",".join(p.get("domains", [])) or "-",
                str(p.get("pub")),
            ]
        )
    out.append(_table(rows) + "\n")
    counters = report.get("counters", {})
    rows = [["COUNTER", "KIND / REASON", "COUNT"]]
    for group in ("sent", "received", "relayed", "dropped", "rejected"):
        for key, value in sorted(counters.get(group, {}).items()):
            rows.append([group, key, str(value)])
    out.append(_table(rows))
    learner = report.get("learner") or {}
    if learner:
        out.append(
            "\n"
            + _table(
                [
                    ["LEARNER", "VALUE"],
                    *(
                        [k, f"{v:.4g}" if isinstance(v, float) else str(v)]
                        for k, v in sorted(learner.items())
                    ),
                ]
            )
        )
    return "".join(out)

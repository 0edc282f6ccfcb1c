"""Entry point: parse the command line and dispatch to a subcommand module."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from metamesh import __version__
from metamesh.cli import (
    cluster_cmd,
    coordinator_cmd,
    demo_cmd,
    deploy_cmd,
    exitcodes,
    experiment_cmd,
    gateway_cmd,
    keys_cmd,
    llm_cmd,
    node_cmd,
    report_cmd,
    status_cmd,
)
from metamesh.cli.logs import setup_logging
from metamesh.errors import MetameshError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metamesh",
        description=(
            "A peer-to-peer network of learning agents. Nodes learn on their own data\n"
            "and share insights, Q-tables and weight deltas with the peers of their domains."
        ),
        epilog="Start with `metamesh demo`. Every subcommand has its own --help.\n\n" + exitcodes.EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"metamesh {__version__}")
    parser.add_argument(
        "--log-level",
        default="info",
        choices=["debug", "info", "warning", "error"],
        help="how much to log to stderr (default info; other libraries log only warnings unless debug)",
    )
    parser.add_argument("--log-json", action="store_true", help="log one JSON object per line")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in (
        demo_cmd,
        experiment_cmd,
        node_cmd,
        gateway_cmd,
        coordinator_cmd,
        cluster_cmd,
        status_cmd,
        report_cmd,
        keys_cmd,
        deploy_cmd,
        llm_cmd,
    ):
        module.add_parser(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    setup_logging(args.log_level, json_logs=args.log_json)
    run = getattr(args, "run", None)
    if run is None:
        parser.print_help()
        return exitcodes.USAGE
    try:
        result: int = run(args)
    except KeyboardInterrupt:
        sys.stderr.write(f"metamesh {args.command}: interrupted\n")
        return exitcodes.INTERRUPTED
    except MetameshError as exc:  # what a command did not translate itself: one line, not a traceback
        sys.stderr.write(f"metamesh {args.command}: {exc}\n")
        return exitcodes.for_error(exc)
    return result

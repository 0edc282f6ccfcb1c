"""``metamesh report RUNDIR``: an experiment's table and plot, rebuilt from its event logs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from metamesh.cli import exitcodes
from metamesh.errors import MetameshError

HELP = "rebuild an experiment's table and plot from the event logs of a run directory"

DESCRIPTION = """\
Read RUNDIR/<arm>/<node>/events.jsonl (what `metamesh demo` and `metamesh
experiment` write; with events.1.jsonl, events.2.jsonl, ... once a log was
rotated), print the results table and redraw the plot. Works on a run that was
interrupted: a node that never finished counts with its last evaluation.

examples:
  metamesh report metamesh-runs/demo
  metamesh report metamesh-runs/experts --plot /tmp/loss.png
"""


def add_parser(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "report", help=HELP, description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("rundir", type=Path, help="a run directory, e.g. metamesh-runs/demo")
    p.add_argument("--plot", type=Path, help="where to draw the plot (default RUNDIR/report.png)")
    p.add_argument("--no-plot", action="store_true", help="print the table only")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from metamesh.experiments.report import build_report

    try:
        report = build_report(args.rundir)
    except MetameshError as exc:
        sys.stderr.write(f"metamesh report: {exc}\n")
        return exitcodes.USAGE
    what = (
        "Greedy accuracy on held-out questions"
        if report.kind == "prompts"
        else ("Mean squared error on held-out data of each node's whole domain (lower is better)")
    )
    sys.stdout.write(f"{what}\n\n{report.table}\n")
    if not args.no_plot:
        path = args.plot or args.rundir / "report.png"
        if report.plot(path):
            sys.stdout.write(f"\nPlot: {path}\n")
        else:
            sys.stdout.write("\nPlot: skipped (pip install 'metamesh[plot]')\n")
    return exitcodes.OK

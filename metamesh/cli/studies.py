"""What every command that runs a study shares: ``--out``/``--force``, claiming the folder, the run itself.

:func:`run_study` claims the output folder, shows the live progress on stderr while
the :class:`~metamesh.experiments.harness.Harness` runs the study, prints its summary,
writes ``results.json`` and the plots and says where every artefact is. Exit codes:
OK; USAGE when the folder is refused; FAILURE when an arm failed (with the end of its
node's log); INTERRUPTED after Ctrl-C. Every node process is stopped in all of them.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metamesh.cli import exitcodes
from metamesh.errors import MetameshError
from metamesh.experiments import outdir
from metamesh.experiments.harness import Harness, Launcher, Study, local_process, write_artefacts
from metamesh.experiments.progress import ProgressDisplay

__all__ = ["add_out", "claim_out", "have_torch", "names", "run_study"]


def add_out(p: argparse.ArgumentParser, default: Path, plots: str) -> None:
    """--out and --force, the same for every command that writes a run folder."""
    p.add_argument(
        "--out",
        type=Path,
        default=default,
        help=f"where event logs, results.json and {plots} go (default {default}); "
        "a folder that holds other files is refused",
    )
    p.add_argument(
        "--force",
        action="store_true",
        help="replace the results of an earlier run in --out (its default folder is replaced without it); "
        "other files there are kept",
    )
    p.set_defaults(default_out=default)


def names(text: str) -> list[str]:
    """A comma-separated option's items, blanks dropped."""
    return [a.strip() for a in text.split(",") if a.strip()]


def have_torch() -> bool:
    """Whether torch imports here (the experts and braid learners need it)."""
    try:
        import torch  # noqa: F401
    except ImportError:
        return False
    return True


def claim_out(args: argparse.Namespace, root: Path, outputs: Sequence[str], command: str) -> int:
    """OK once --out is this run's folder; else USAGE, after one line saying why and what to do."""
    options = {k: v for k, v in vars(args).items() if k not in ("run", "default_out")}
    try:
        replaced = outdir.claim(
            root,
            outputs,
            command=f"metamesh {command}",
            options=options,
            force=args.force or args.out == args.default_out,
        )
    except outdir.OutputRefused as exc:
        sys.stderr.write(f"metamesh {command}: {exc}\n")
        return exitcodes.USAGE
    if replaced:
        sys.stderr.write(f"replacing the results of an earlier run in {root}\n")
    return exitcodes.OK


def run_study(
    study: Study[Any],
    args: argparse.Namespace,
    command: str,
    also_writes: Sequence[str] = (),
    *,
    launcher: Launcher = local_process,
    poll: float = 0.25,
) -> int:
    """Claim --out, run every arm with the live progress on stderr, then print and write the results.

    ``launcher`` and ``poll`` are the harness's (tests give it fake nodes)."""
    if code := claim_out(args, study.root, [*study.outputs(), *also_writes], command):
        return code
    if intro := study.intro():
        sys.stderr.write(intro + "\n")
    started = time.monotonic()
    display = ProgressDisplay(sys.stderr, arms=len(study.arm_names()))
    try:
        results = Harness(study, progress=display, launcher=launcher, poll=poll).run()
    except KeyboardInterrupt:
        display.close()
        sys.stderr.write("\ninterrupted; every node process was stopped\n")
        return exitcodes.INTERRUPTED
    except MetameshError as exc:
        display.close()
        sys.stderr.write(f"\nmetamesh experiment: {exc}\n")
        return exitcodes.FAILURE
    display.close()
    out = sys.stdout
    out.write(study.summary(results))
    plots = write_artefacts(study, results)
    out.write(f"Event logs:  {study.root}/<arm>/<node>/events.jsonl\n")
    out.write(f"Results:     {study.root / 'results.json'}\n")
    out.write(
        "".join(f"Plot:        {p}\n" for p in plots)
        or "Plot:        skipped (pip install 'metamesh[plot]')\n"
    )
    out.write(f"Took {time.monotonic() - started:.0f} s.\n")
    return exitcodes.OK

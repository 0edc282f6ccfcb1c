"""`metamesh report RUNDIR`: an experiment's table from its event logs alone, interrupted runs too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from metamesh.errors import MetameshError
from metamesh.experiments.report import build_report


def write_log(path: Path, events: list[dict[str, Any]], *, torn: bool = False) -> None:
    path.parent.mkdir(parents=True)
    text = "".join(json.dumps({"t": 0.0, **e}) + "\n" for e in events)
    path.write_text(text + ('{"t": 1.0, "event": "ev' if torn else ""))  # a line cut by a crash


def prompt_node(root: Path, arm: str, node: str, curve: list[float], done: bool = True) -> None:
    events: list[dict[str, Any]] = [{"event": "start", "node": node}]
    events += [{"event": "eval", "episodes": 50 * (i + 1), "accuracy": a} for i, a in enumerate(curve)]
    if done:
        events.append(
            {"event": "done", "episodes": 50 * len(curve), "accuracy": curve[-1], "best": {"math": "think"}}
        )
    write_log(root / arm / node / "events.jsonl", events, torn=not done)


def test_a_prompts_run_is_rebuilt_with_its_late_joiner_and_an_interrupted_node(tmp_path: Path) -> None:
    prompt_node(tmp_path, "random", "ran0", [0.6, 0.6])
    prompt_node(tmp_path, "local", "loc0", [0.6, 0.7])
    prompt_node(tmp_path, "federated", "fed0", [0.7, 0.9])
    prompt_node(tmp_path, "federated+c", "fed0", [0.85, 0.9])
    prompt_node(tmp_path, "federated+c", "late-joiner", [0.88])
    prompt_node(tmp_path, "federated+c", "late-fresh", [0.65])
    prompt_node(tmp_path, "federated+c", "fed1", [0.8], done=False)  # interrupted: its last evaluation counts
    report = build_report(tmp_path)
    assert report.kind == "prompts"
    assert [a.arm for a in report.arms] == ["random", "local", "federated", "federated+c"]
    coordinated = report.arms[-1]
    assert coordinated.accuracy == {"fed0": 0.9, "fed1": 0.8}
    assert coordinated.late is not None and (coordinated.late.with_coordinator, coordinated.late.alone) == (
        0.88,
        0.65,
    )
    lines = report.table.splitlines()
    assert lines[1].startswith("random") and "85.0%" in lines[4] and "0.88 with" in report.table


def test_an_experts_run_is_rebuilt_per_domain(tmp_path: Path) -> None:
    for arm, losses in (("local", [0.9, 0.8]), ("domain", [0.5, 0.2])):
        for home in ("medical-0", "economic-0"):
            events = [{"event": "start", "node": f"{arm}-{home}"}]
            events += [{"event": "round", "round": r + 1, "heldout_loss": v} for r, v in enumerate(losses)]
            events.append({"event": "done", "round": 2, "heldout_loss": losses[-1]})
            write_log(tmp_path / arm / home / "events.jsonl", events)
    report = build_report(tmp_path)
    assert report.kind == "experts" and sorted(report.domains) == ["economic", "medical"]
    assert [round(a.mean, 3) for a in report.arms] == [0.8, 0.2]
    domain_row = next(line for line in report.table.splitlines() if line.startswith("domain"))
    assert "0.25" in domain_row  # domain vs local


def test_what_is_not_a_run_directory_is_one_clear_error(tmp_path: Path) -> None:
    with pytest.raises(MetameshError, match="not a directory"):
        build_report(tmp_path / "missing")
    (tmp_path / "arm" / "node").mkdir(parents=True)
    with pytest.raises(MetameshError, match="no event logs"):
        build_report(tmp_path)
    result = subprocess.run([sys.executable, "-m", "metamesh", "report", str(tmp_path)], capture_output=True,
                            text=True, timeout=60)  # fmt: skip
    assert result.returncode == 2 and result.stderr.startswith("metamesh report: no event logs")

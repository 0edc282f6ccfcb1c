"""One real run through the harness: node processes on loopback, results.json and the report from logs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import run_experiment

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]


def test_a_small_prompts_run_writes_what_the_report_reads(tmp_path: Path) -> None:
    out = tmp_path / "run"
    args = ["prompts", "--nodes", "2", "--episodes", "40", "--eval-every", "20", "--arms", "local,federated"]
    stdout, doc = run_experiment([*args, "--coordinator"], out, timeout=120)
    assert list(doc) == ["local", "federated", "federated+c"]
    for arm, result in doc.items():
        assert set(result) >= {
            "accuracy",
            "mean",
            "curves",
            "best",
            "episodes_to_80",
            "seconds",
            "late_joiner",
        }
        assert len(result["accuracy"]) == 2 and all(len(c) == 2 for c in result["curves"].values()), arm
    assert doc["federated+c"]["late_joiner"] is not None and doc["federated"]["late_joiner"] is None
    assert "episodes to 80%" in stdout and f"Results:     {out / 'results.json'}" in stdout
    assert (out / "federated+c" / "coordinator" / "events.jsonl").exists()
    report = subprocess.run(
        [sys.executable, "-m", "metamesh", "report", str(out), "--no-plot"],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert report.returncode == 0 and "federated+c" in report.stdout, report.stderr

"""A node's event log rotates by size, loses no line, and reads back whole and in order."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.experiments.report import build_report
from metamesh.node.eventfiles import log_files, read_events, rotate
from metamesh.node.state import EventLog

pytestmark = pytest.mark.timeout(60)


def numbers(path: Path) -> list[int]:
    return [int(e["i"]) for e in read_events(path)]


def test_the_log_rotates_by_size_and_keeps_only_its_bound(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=1_000, keep=3)
    for i in range(300):
        log.write("tick", i=i, pad="x" * 20)
    log.close()
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["events.1.jsonl", "events.2.jsonl", "events.jsonl"]
    assert all(p.stat().st_size <= 1_000 for p in tmp_path.iterdir())
    kept = numbers(path)
    # The newest lines, oldest first, none missing between the first kept and the last written.
    assert kept == list(range(kept[0], 300)) and kept[0] > 0
    line = len((tmp_path / "events.1.jsonl").read_text().splitlines()[0]) + 1
    assert len(kept) >= 2 * (1_000 // line)  # two full files behind the current one


def test_every_line_is_on_disk_as_soon_as_it_is_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=500, keep=10)
    try:
        for i in range(40):
            log.write("tick", i=i)
            assert numbers(path) == list(range(i + 1))  # read by another handle, before close
    finally:
        log.close()
    assert len(log_files(path)) > 2


def test_a_node_killed_mid_write_loses_only_its_torn_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    script = (
        "import os, sys\n"
        "from pathlib import Path\n"
        "from metamesh.node.state import EventLog\n"
        "log = EventLog(Path(sys.argv[1]), max_bytes=400, keep=100)\n"
        "for i in range(100):\n"
        "    log.write('tick', i=i)\n"
        "os._exit(9)  # no close, no flush at exit\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], timeout=30, check=False)
    assert done.returncode == 9
    with path.open("a") as fh:
        fh.write('{"t": 1.0, "event": "ti')  # the line a kill -9 cut short
    assert numbers(path) == list(range(100))


def test_reopening_a_full_log_rotates_before_the_next_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text("".join(json.dumps({"event": "old", "i": i}) + "\n" for i in range(50)))
    log = EventLog(path, max_bytes=200, keep=5)
    log.write("new", i=50)
    log.close()
    assert (tmp_path / "events.1.jsonl").exists()
    assert [e["event"] for e in read_events(path)][-2:] == ["old", "new"]
    assert numbers(path) == list(range(51))


def test_a_gap_left_by_a_crash_during_rotation_still_reads_in_order(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    for n, i in ((3, 0), (1, 1)):  # events.2.jsonl never made it
        (tmp_path / f"events.{n}.jsonl").write_text(json.dumps({"i": i}) + "\n")
    path.write_text(json.dumps({"i": 2}) + "\n")
    assert numbers(path) == [0, 1, 2]
    rotate(path, keep=3)  # .3 is past the bound and dropped; .1 -> .2; current -> .1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.1.jsonl", "events.2.jsonl"]
    assert numbers(path) == [1, 2]


def test_keep_one_means_only_the_current_file(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    log = EventLog(path, max_bytes=100, keep=1)
    for i in range(20):
        log.write("tick", i=i)
    log.close()
    assert [p.name for p in tmp_path.iterdir()] == ["events.jsonl"]
    assert numbers(path)[-1] == 19


def test_the_report_reads_across_rotated_files(tmp_path: Path) -> None:
    home = tmp_path / "federated" / "fed0"
    home.mkdir(parents=True)
    log = EventLog(home / "events.jsonl", max_bytes=300, keep=100)
    log.write("start", node="node-a")
    for i in range(30):
        log.write("eval", episodes=10 * (i + 1), accuracy=i / 40)
    log.close()
    assert len(log_files(home / "events.jsonl")) > 5
    report = build_report(tmp_path)
    arm = report.arms[0]
    assert list(arm.accuracy) == ["node-a"]  # the id from the start event, in the oldest file
    assert [ep for ep, _ in arm.curves["node-a"]] == [10 * (i + 1) for i in range(30)]
    assert arm.accuracy["node-a"] == 29 / 40


def test_metamesh_report_on_a_run_whose_current_file_was_just_rotated(tmp_path: Path) -> None:
    home = tmp_path / "local" / "loc0"
    home.mkdir(parents=True)
    (home / "events.1.jsonl").write_text(
        json.dumps({"event": "start", "node": "loc0"}) + "\n"
        + json.dumps({"event": "eval", "episodes": 50, "accuracy": 0.75}) + "\n"
    )  # fmt: skip
    out = subprocess.run(
        [sys.executable, "-m", "metamesh", "report", str(tmp_path), "--no-plot"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    assert "75%" in out.stdout

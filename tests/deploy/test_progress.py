"""The live progress line fits the terminal, redraws in place on a TTY, and writes plain lines elsewhere."""

from __future__ import annotations

import io

import pytest

from metamesh.experiments.progress import ProgressDisplay, Status, format_eta, format_status

LONG = Status(
    "federated+c", nodes=12, done=450, total=2400, unit="questions", finished=3, note="mean accuracy 0.83"
)


@pytest.mark.parametrize("width", [10, 20, 30, 40, 60, 80, 120])
def test_the_line_never_exceeds_the_width(width: int) -> None:
    line = format_status(LONG, width=width, elapsed=30.0, position=(4, 4))
    assert 0 < len(line) <= width


def test_a_wide_line_shows_counts_percentage_eta_and_the_note() -> None:
    line = format_status(LONG, width=200, elapsed=30.0, position=(4, 4))
    assert line.startswith("federated+c (4/4)  450/2400 questions  19%  ETA 2:10")
    assert "3/12 nodes done" in line and line.endswith("mean accuracy 0.83")


def test_a_narrow_line_keeps_the_arm_and_its_counts_and_drops_finished_nodes_then_the_note() -> None:
    line = format_status(LONG, width=79, elapsed=30.0, position=(4, 4))
    assert "450/2400 questions" in line and "accuracy" in line and "nodes done" not in line
    line = format_status(LONG, width=60, elapsed=30.0, position=(4, 4))
    assert "450/2400 questions" in line and "ETA" in line and "accuracy" not in line


def test_without_a_total_there_is_no_eta() -> None:
    line = format_status(Status("local", 3, 17, None, "iterations"), width=80, elapsed=5.0)
    assert "17 iterations" in line and "ETA" not in line and "%" not in line


def test_eta_formats() -> None:
    assert [format_eta(s) for s in (9.6, 185, 3725)] == ["10 s", "3:05", "1:02:05"]


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_off_a_terminal_it_writes_plain_lines_at_arm_starts_every_interval_and_when_done() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, arms=2, tty=False, interval=10.0, clock=clock, columns=lambda: 80)
    for tick in range(100):  # 25 s of reports four times a second
        clock.now = tick * 0.25
        display(Status("local", 4, tick, 400, "questions"))
    display(Status("local", 4, 400, 400, "questions", finished=4))
    display(Status("local", 4, 400, 400, "questions", finished=4))
    display(Status("federated", 4, 0, 400, "questions"))
    display.close()
    lines = out.getvalue().splitlines()
    assert "\r" not in out.getvalue() and "\x1b" not in out.getvalue()
    assert [line.split()[0] for line in lines] == ["local"] * 4 + ["federated"]
    assert "4/4 nodes done" in lines[3] and lines[4].startswith("federated (2/2)")


def test_on_a_terminal_it_redraws_one_line_in_the_terminals_width() -> None:
    out, clock = io.StringIO(), Clock()
    display = ProgressDisplay(out, arms=1, tty=True, clock=clock, columns=lambda: 40)
    for done in range(0, 100, 10):
        clock.now += 1.0
        display(Status("federated+c", 12, done * 10, 2400, "questions", note="mean accuracy 0.80"))
    display.close()
    text = out.getvalue()
    assert text.endswith("\n") and text.count("\n") == 1
    draws = text.rstrip("\n").split("\r")[1:]
    assert len(draws) == 10
    assert all(len(d.removesuffix("\x1b[K")) < 40 for d in draws)

"""A learner whose step returns at once does not spin the node; learners that work are not slowed."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.node.learner import StepPacer

pytestmark = pytest.mark.timeout(60)


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_step_that_returns_at_once_waits_out_the_minimum_interval() -> None:
    clock = Clock()
    pacer = StepPacer(min_interval=0.005, clock=clock)
    clock.now += 0.001
    assert pacer.delay(None, 0.0) == pytest.approx(0.004)
    assert pacer.delay(True, 0.0) == pytest.approx(0.004)


def test_a_step_that_works_or_a_configured_pace_is_not_slowed() -> None:
    clock = Clock()
    pacer = StepPacer(min_interval=0.005, clock=clock)
    clock.now += 0.2  # a real LLM call
    assert pacer.delay(None, 0.0) == 0.0
    assert pacer.delay(None, 0.02) == 0.02  # an experiment's pace, even after an instant step
    clock.now = 100.0
    assert pacer.delay(None, 0.005) == 0.005


def test_a_step_with_nothing_to_do_backs_off_to_a_second_and_recovers_at_once() -> None:
    clock = Clock()
    pacer = StepPacer(idle_first=0.01, idle_max=1.0, clock=clock)
    waits = [pacer.delay(False, 0.0) for _ in range(10)]
    assert waits[:3] == [0.01, 0.02, 0.04] and waits[-1] == 1.0 and waits == sorted(waits)
    clock.now += 1.0
    assert pacer.delay(True, 0.0) == 0.0
    assert pacer.delay(False, 0.0) == 0.01  # the backoff starts over
    assert pacer.delay(False, 0.3) == 0.3  # and never cuts a longer pace short


CHILD = """
import asyncio, json, sys, time
from pathlib import Path
from metamesh.node.config import load_config
from metamesh.node.learner import Learner
from metamesh.node.runtime import Node

class Instant(Learner):
    name = "instant"
    def __init__(self): self.steps = 0
    async def step(self): self.steps += 1
    def share(self): return []
    def merge(self, sender, domain, body): pass
    def apply_meta(self, meta): pass
    def affinity(self): return {}
    def summary(self): return {"steps": float(self.steps)}
    def state(self): return {}
    def load_state(self, state): pass

async def main():
    learner = Instant()
    config = load_config(profile="local", overrides={"home": Path(sys.argv[1]), "name": "spin"})
    async with Node(config, learner=learner):
        while learner.steps < 20:  # learning has begun
            await asyncio.sleep(0.01)
        cpu, wall, steps = time.process_time(), time.monotonic(), learner.steps
        await asyncio.sleep(float(sys.argv[2]))  # the measured window
        cpu, wall = time.process_time() - cpu, time.monotonic() - wall
        print(json.dumps({"cpu": cpu, "wall": wall, "steps": learner.steps - steps}), flush=True)

asyncio.run(main())
"""


def test_a_node_whose_learner_returns_at_once_stays_under_five_percent_cpu(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tmp_path / "home"), "3"],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    m = json.loads(out.stdout.strip().splitlines()[-1])
    share = m["cpu"] / m["wall"]
    assert share < 0.05, m
    assert m["steps"] > 50 * m["wall"], m  # it still learns, at up to 200 steps a second

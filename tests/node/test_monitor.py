"""The closed-loop monitor: drift found quickly, no false alarms on noise, no flapping."""

from __future__ import annotations

import itertools
import random

import pytest

from metamesh.learners.monitor import DriftMonitor, MonitorConfig, js_divergence

CHOICES = ("direct", "reasoning", "brevity", "expert", "format", "examples")


def draw(rng: random.Random, weights: dict[str, float]) -> str:
    return rng.choices(list(weights), weights=list(weights.values()))[0]


def run(
    monitor: DriftMonitor, rng: random.Random, weights: dict[str, float], cycles: int, score: float = 0.9
) -> None:
    for _ in range(cycles * monitor.config.cycle):
        monitor.observe(draw(rng, weights), score if rng.random() < 0.9 else 1 - score)


STEADY = {"reasoning": 0.6, "direct": 0.1, "brevity": 0.1, "expert": 0.1, "format": 0.05, "examples": 0.05}
CHANGED = {"brevity": 0.6, "direct": 0.1, "reasoning": 0.1, "expert": 0.1, "format": 0.05, "examples": 0.05}


def test_js_divergence_bounds() -> None:
    assert js_divergence({"a": 1}, {"a": 2}) == 0.0
    assert js_divergence({"a": 1}, {"b": 1}) == pytest.approx(1.0)
    assert js_divergence({}, {}) == 0.0
    assert 0 < js_divergence(STEADY, CHANGED) < 1


def test_an_injected_behaviour_change_is_flagged_within_two_cycles() -> None:
    rng = random.Random(3)
    monitor = DriftMonitor(MonitorConfig(cycle=50))
    run(monitor, rng, STEADY, 30)
    assert not monitor.drifting and not any(r.changes for r in monitor.reports)
    changed_at = len(monitor.reports)
    run(monitor, rng, CHANGED, 10)
    raised = next(r.cycle for r in monitor.reports if "drift" in r.changes)
    assert raised - changed_at <= 2
    # Accepting the new behaviour clears the alert and a new reference forms.
    monitor.rebaseline()
    run(monitor, rng, CHANGED, 20)
    assert not monitor.drifting


def test_stationary_noise_raises_no_alert_over_a_long_run() -> None:
    for seed in range(3):
        rng = random.Random(seed)
        monitor = DriftMonitor(MonitorConfig(cycle=50))
        run(monitor, rng, STEADY, 1000)  # 50,000 observations
        drifts = [r.drift for r in monitor.reports if r.drift is not None]
        assert not any(r.changes for r in monitor.reports), seed
        assert max(drifts) < 0.16, max(drifts)  # the worst of 1,000 cycles stays below the raise


def test_alerts_do_not_flap_near_the_threshold() -> None:
    # A behaviour whose drift hovers around the raise threshold, cycle to cycle.
    near = {"brevity": 0.53, "reasoning": 0.22, "direct": 0.1, "expert": 0.1, "format": 0.05}
    rng = random.Random(7)
    monitor = DriftMonitor(MonitorConfig(cycle=50))
    run(monitor, rng, STEADY, 4)
    run(monitor, rng, near, 400)
    drifts = [r.drift for r in monitor.reports if r.drift is not None]
    single = sum(1 for a, b in itertools.pairwise(drifts) if (a > 0.2) != (b > 0.2))
    transitions = sum(len(r.changes) for r in monitor.reports)
    assert min(drifts) < 0.2 < max(drifts)  # it really does cross the line, often
    assert single > 20  # one threshold would flap (40 times here)
    assert transitions <= 2  # the trigger raised once and held


def test_misalignment_is_a_fall_from_the_reference_not_a_low_score() -> None:
    rng = random.Random(5)
    monitor = DriftMonitor(MonitorConfig(cycle=50))
    run(monitor, rng, STEADY, 40, score=0.3)  # a weak model, steadily weak: not misaligned
    assert not any(r.changes for r in monitor.reports)


def test_misalignment_with_feedback_is_raised_and_cleared() -> None:
    rng = random.Random(11)
    monitor = DriftMonitor(MonitorConfig(cycle=50))
    run(monitor, rng, STEADY, 10, score=0.9)
    run(monitor, rng, STEADY, 5, score=0.2)
    assert monitor.misaligned
    run(monitor, rng, STEADY, 5, score=0.9)
    assert not monitor.misaligned
    changes = [c for r in monitor.reports for c in r.changes]
    assert changes == ["misaligned", "aligned"]


def test_coherence_with_peers() -> None:
    rng = random.Random(2)
    monitor = DriftMonitor(MonitorConfig(cycle=50))
    report = None
    for _ in range(50):
        report = monitor.observe(draw(rng, STEADY), peers=[STEADY, STEADY])
    assert report is not None and report.coherence is not None and report.coherence > 0.9
    for _ in range(50):
        report = monitor.observe(draw(rng, STEADY), peers=[{"examples": 1.0}])
    assert report is not None and report.coherence is not None and report.coherence < 0.3


def test_config_is_checked() -> None:
    with pytest.raises(ValueError):
        MonitorConfig(drift_raise=0.1, drift_clear=0.2)
    with pytest.raises(ValueError):
        DriftMonitor().observe("x", 1.5)

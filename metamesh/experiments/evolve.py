"""The prompt-evolution experiment (seed 003) with real node processes on this machine.

* The comparison study: every node's static baseline prompt against its
  evolved prompts on the same held-out questions (the win margin).
* Local vs federated evolution: the same nodes evolving alone, then sharing
  their best prompts (each received prompt scored locally before adoption),
  compared by accuracy and LLM calls per node.
* The drift run: prompt-strategy nodes learn together; from a given question
  on, one of them chooses at random. Its own monitor's drift and alignment,
  and whether its peers quarantine it.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode, stop_all
from metamesh.experiments.outdir import clear
from metamesh.experiments.progress import Status
from metamesh.experiments.prompts import pyplot, save_figure, wait_until_done

__all__ = ["DriftRun", "EvolveArm", "EvolveExperiment", "render_table", "write_plots"]

log = logging.getLogger(__name__)

ARMS = ("local", "federated")


@dataclass(slots=True)
class EvolveArm:
    arm: str
    static: dict[str, float] = field(default_factory=dict)
    evolved: dict[str, float] = field(default_factory=dict)
    calls: dict[str, int] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Per node: (LLM calls so far, mean best validation score over categories)."""
    adopted: int = 0
    refused: int = 0
    seconds: float = 0.0

    @staticmethod
    def _mean(values: dict[str, Any]) -> float:
        return sum(values.values()) / len(values) if values else float("nan")

    @property
    def static_mean(self) -> float:
        return self._mean(self.static)

    @property
    def evolved_mean(self) -> float:
        return self._mean(self.evolved)

    @property
    def calls_mean(self) -> float:
        return self._mean(self.calls)


@dataclass(slots=True)
class DriftRun:
    drift_at: int
    drifter: str
    drift: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    alignment: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    coherence: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    flagged_at: int | None = None
    """Questions answered by the drifter when its own monitor raised the drift alert."""
    quarantined_by: list[str] = field(default_factory=list)
    weights: dict[str, float] = field(default_factory=dict)
    """Per honest node, the lowest weight it gave the drifter's experience."""
    false_alarms: int = 0
    """Alerts raised by the honest nodes' monitors."""


@dataclass(slots=True, kw_only=True)
class EvolveExperiment:
    root: Path
    nodes: int = 3
    pace: float = 0.01
    seed: int = 0
    arms: Sequence[str] = ARMS
    dataset: str = ""
    """Questions for the evolving nodes: a built-in set by name (trivia, commonsense, sentiment,
    joined with +) or a file; empty is the trivia set."""
    drift: bool = True
    drift_episodes: int = 2400
    drift_at: int = 1400
    timeout: float = 300.0
    progress: Callable[[Status], None] | None = None

    def arm_names(self) -> list[str]:
        """The arms in the order they run, the drift run last: each is a folder of ``root``."""
        return [*self.arms, *(["drift"] if self.drift else [])]

    def outputs(self) -> list[str]:
        """Every name this run writes at the top of ``root``."""
        return [*self.arm_names(), "results.json", "evolution.png", "comparison.png", "drift.png"]

    def run(self) -> tuple[list[EvolveArm], DriftRun | None]:
        """Run every arm, then the drift run; their folders left by an earlier run are removed first."""
        clear(self.root, self.arm_names())
        arms = [self._run_arm(arm) for arm in self.arms]
        return arms, self._drift_run() if self.drift else None

    def _run_arm(self, arm: str) -> EvolveArm:
        started = time.monotonic()
        procs: list[LocalNode] = []
        try:
            for i in range(self.nodes):
                args = ["--profile", "local", "--name", f"{arm[:3]}{i}", "--learner", "evolve",
                        "--pace", str(self.pace), "--regions", str(self.nodes), "--part", str(i),
                        "--random-seed", str(self.seed * 100 + i), "--arm", arm]  # fmt: skip
                if self.dataset:
                    args += ["--dataset", self.dataset]
                if procs and arm == "federated":
                    args += ["--seed", procs[0].router]
                node = LocalNode(self.root / arm / f"node-{i}", args).start(60.0)
                procs.append(node)
            wait_until_done(procs, arm, self.root / arm, self.timeout, lambda ev: self._report(arm, ev))
            result = EvolveArm(arm)
            for p in procs:
                collect(p.id, p.events(), result)
        finally:
            stop_all(procs)
        result.seconds = time.monotonic() - started
        return result

    def _drift_run(self) -> DriftRun:
        procs: list[LocalNode] = []
        run = DriftRun(self.drift_at, "drifter")
        try:
            for i in range(self.nodes + 1):
                name = "drifter" if i == self.nodes else f"honest{i}"
                args = ["--profile", "local", "--name", name, "--learner", "prompts", "--pace", "0.005",
                        "--eval-every", "0", "--episodes", str(self.drift_episodes),
                        "--random-seed", str(self.seed * 100 + i), "--quarantine-above", "3"]  # fmt: skip
                if name == "drifter":
                    args += ["--drift-at", str(self.drift_at)]
                if procs:
                    args += ["--seed", procs[0].router]
                procs.append(LocalNode(self.root / "drift" / name, args).start(60.0))
            wait_until_done(
                procs, "drift", self.root / "drift", self.timeout, lambda ev: self._report("drift", ev)
            )
            for p in procs:
                collect_drift(p.id, p.events(), run)
        finally:
            stop_all(procs)
        return run

    def _report(self, arm: str, events: dict[str, list[dict[str, Any]]]) -> None:
        if self.progress is None:
            return
        done = sum(any(e["event"] == "done" for e in ev) for ev in events.values())
        if arm == "drift":
            answered = [
                max((int(e["episodes"]) for e in ev if e["event"] == "monitor"), default=0)
                for ev in events.values()
            ]
            total = self.drift_episodes * len(events)
            self.progress(Status(arm, len(events), sum(answered), total, "questions", done))
            return
        iterations = sum(e["event"] == "iteration" for ev in events.values() for e in ev)
        adopted = sum(e["event"] == "adopted" for ev in events.values() for e in ev)
        note = f"{adopted} prompts adopted"
        self.progress(Status(arm, len(events), iterations, None, "iterations", done, note))


def collect(node: str, events: Sequence[dict[str, Any]], result: EvolveArm) -> None:
    """One node's figures: held-out accuracies, calls, and its progress curve."""
    best: dict[str, float] = {}
    calls: dict[str, int] = {}
    curve: list[tuple[int, float]] = []
    for e in events:
        if e["event"] == "iteration":
            best[str(e["category"])] = float(e["best"])
            calls[str(e["category"])] = int(e["calls"])
            curve.append((sum(calls.values()), sum(best.values()) / len(best)))
        elif e["event"] in ("adopted", "refused"):
            setattr(result, str(e["event"]), getattr(result, str(e["event"])) + 1)
        elif e["event"] == "done":
            if e.get("static") is not None:
                result.static[node] = float(e["static"])
                result.evolved[node] = float(e["evolved"])
            result.calls[node] = int(e["calls"])
    result.curves[node] = curve


def collect_drift(node: str, events: Sequence[dict[str, Any]], run: DriftRun) -> None:
    for e in events:
        if e["event"] == "monitor":
            if e.get("drift") is not None:
                run.drift.setdefault(node, []).append((int(e["episodes"]), float(e["drift"])))
            for name in ("alignment", "coherence"):
                if e.get(name) is not None:
                    getattr(run, name).setdefault(node, []).append((int(e["episodes"]), float(e[name])))
            if "drift" in e.get("changes", []):
                if node == run.drifter and run.flagged_at is None:
                    run.flagged_at = int(e["episodes"])
                elif node != run.drifter:
                    run.false_alarms += 1
        elif e["event"] == "peer_weight" and e.get("peer") == run.drifter:
            run.weights[node] = min(run.weights.get(node, 1.0), float(e["weight"]))
        elif (
            e["event"] == "quarantine"
            and e.get("peer") == run.drifter
            and e.get("state") == "quarantined"
            and node not in run.quarantined_by
        ):
            run.quarantined_by.append(node)


def render_table(arms: Sequence[EvolveArm], drift: DriftRun | None) -> str:
    lines = [
        f"{'arm':<10}{'static':>8}{'evolved':>9}{'margin':>8}{'calls/node':>12}{'adopted':>9}{'refused':>9}"
    ]
    for a in arms:
        lines.append(
            f"{a.arm:<10}{a.static_mean:>8.3f}{a.evolved_mean:>9.3f}{a.evolved_mean - a.static_mean:>+8.3f}"
            f"{a.calls_mean:>12,.0f}{a.adopted:>9}{a.refused:>9}"
        )
    if drift is not None:
        honest = len(drift.drift) - 1
        flagged = "never" if drift.flagged_at is None else f"at question {drift.flagged_at}"
        lines.append(
            f"\ndrift run: {drift.drifter} chose at random from question {drift.drift_at}; its monitor "
            f"flagged it {flagged}; quarantined by {len(drift.quarantined_by)} of {honest} peers; "
            f"false alarms on honest nodes: {drift.false_alarms}"
        )
    return "\n".join(lines)


def write_plots(arms: Sequence[EvolveArm], drift: DriftRun | None, root: Path) -> list[Path]:
    """evolution.png (best score against LLM calls, per node and arm), comparison.png (static vs
    evolved per arm) and drift.png (drift, alignment and coherence over questions)."""
    plt = pyplot()
    if plt is None:
        return []
    written = []
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = {"local": "#e08a2c", "federated": "#2c7be0"}
    for a in arms:
        for i, (_, curve) in enumerate(sorted(a.curves.items())):
            if curve:
                xs, ys = zip(*curve, strict=True)
                ax.plot(xs, ys, color=colors.get(a.arm), alpha=0.8, label=a.arm if i == 0 else None)
    ax.set_xlabel("LLM calls by the node")
    ax.set_ylabel("best prompt's validation score (mean over categories)")
    ax.set_title("Prompt evolution: local vs federated")
    if any(a.curves for a in arms):
        ax.legend(loc="lower right")
    save_figure(plt, fig, ax, root / "evolution.png")
    written.append(root / "evolution.png")
    if arms:
        fig, ax = plt.subplots(figsize=(6, 3.6), dpi=110)
        width = 0.38
        slots = list(range(len(arms)))
        ax.bar(
            [x - width / 2 for x in slots],
            [a.static_mean for a in arms],
            width,
            label="static prompt",
            color="#999999",
        )
        ax.bar(
            [x + width / 2 for x in slots],
            [a.evolved_mean for a in arms],
            width,
            label="evolved",
            color="#2c7be0",
        )
        ax.set_xticks(slots, [f"{a.arm}\n{a.calls_mean:,.0f} calls/node" for a in arms])
        ax.set_ylabel("held-out accuracy")
        ax.set_ylim(0, 1)
        ax.set_title("Meta-prompting vs the static baseline")
        ax.legend(loc="upper left")
        save_figure(plt, fig, ax, root / "comparison.png")
        written.append(root / "comparison.png")
    if drift is not None and drift.drift:
        fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
        for node, points in sorted(drift.drift.items()):
            xs, ys = zip(*points, strict=True)
            ax.plot(
                xs, ys, marker=".", label=f"{node} drift", color="#d73027" if node == drift.drifter else None
            )
        for name, style in (("alignment", "--"), ("coherence", "-.")):
            points = getattr(drift, name).get(drift.drifter)
            if points:
                xs, ys = zip(*points, strict=True)
                ax.plot(xs, ys, linestyle=style, color="#d73027", alpha=0.6, label=f"{drift.drifter} {name}")
        ax.axvline(drift.drift_at, color="#999999", linestyle=":", label="behaviour changed")
        ax.set_xlabel("questions answered")
        ax.set_ylabel("drift (JS divergence) / alignment / coherence")
        ax.set_title("Closed-loop monitor: one node changes its behaviour")
        ax.legend(loc="upper left", fontsize=8)
        save_figure(plt, fig, ax, root / "drift.png")
        written.append(root / "drift.png")
    return written

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

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from metamesh.experiments.events import Adoption, Done, Iteration, Monitor, NodeLog, PeerWeight, Quarantine
from metamesh.experiments.harness import Arm, Finished, NodeSpec, Study, plan_arms
from metamesh.experiments.plots import pyplot, save_figure
from metamesh.experiments.progress import Status

__all__ = ["ARMS", "DriftRun", "EvolveArm", "EvolveExperiment", "render_table", "write_plots"]

ARMS = ("local", "federated")
DRIFT = "drift"


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
    seconds: float = 0.0


Result = EvolveArm | DriftRun


@dataclass(slots=True, kw_only=True)
class EvolveExperiment(Study[Result]):
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
    together: ClassVar[bool] = False
    """The nodes start one after another, as the measured figures were taken."""

    def arm_plan(self) -> list[Arm]:
        """The arms, the drift run last."""
        return plan_arms([*self.arms, *([DRIFT] if self.drift else [])])

    def plot_names(self) -> list[str]:
        return ["evolution.png", "comparison.png", "drift.png"]

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        if arm.kind == DRIFT:
            return [self._drift_node(i) for i in range(self.nodes + 1)]
        specs = []
        for i in range(self.nodes):
            args = ["--profile", "local", "--name", f"{arm.kind[:3]}{i}", "--learner", "evolve",
                    "--pace", str(self.pace), "--regions", str(self.nodes), "--part", str(i),
                    "--random-seed", str(self.seed * 100 + i), "--arm", arm.kind]  # fmt: skip
            args += ["--dataset", self.dataset] if self.dataset else []
            specs.append(NodeSpec(f"node-{i}", args, join=arm.kind == "federated"))
        return specs

    def _drift_node(self, i: int) -> NodeSpec:
        name = "drifter" if i == self.nodes else f"honest{i}"
        args = ["--profile", "local", "--name", name, "--learner", "prompts", "--pace", "0.005",
                "--eval-every", "0", "--episodes", str(self.drift_episodes),
                "--random-seed", str(self.seed * 100 + i), "--quarantine-above", "3"]  # fmt: skip
        args += ["--drift-at", str(self.drift_at)] if name == "drifter" else []
        return NodeSpec(name, args, join=True, role=name)

    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        done = sum(log.done is not None for log in logs)
        if arm.kind == DRIFT:
            answered = sum(max((m.episodes for m in log.all(Monitor)), default=0) for log in logs)
            return Status(arm.name, len(logs), answered, self.drift_episodes * len(logs), "questions", done)
        iterations = sum(len(log.all(Iteration)) for log in logs)
        adopted = sum(a.adopted for log in logs for a in log.all(Adoption))
        return Status(arm.name, len(logs), iterations, None, "iterations", done, f"{adopted} prompts adopted")

    def result(self, arm: Arm, nodes: Sequence[Finished]) -> Result:
        if arm.kind == DRIFT:
            run = DriftRun(self.drift_at, "drifter")
            for n in nodes:
                collect_drift(n.log, run)
            return run
        result = EvolveArm(arm.name)
        for n in nodes:
            collect(n.log, result)
        return result

    def document(self, results: Sequence[Result]) -> dict[str, Any]:
        arms, drift = split(results)
        return {
            "arms": {
                r.arm: {
                    "static": r.static,
                    "evolved": r.evolved,
                    "calls": r.calls,
                    "adopted": r.adopted,
                    "refused": r.refused,
                    "curves": r.curves,
                    "seconds": round(r.seconds, 1),
                }
                for r in arms
            },
            "drift": None if drift is None else dataclasses.asdict(drift),
        }

    def summary(self, results: Sequence[Result]) -> str:
        table = render_table(*split(results))
        head = "Held-out accuracy of the static prompt and the evolved prompts (mean over nodes)"
        return f"\n{head}\n\n{table}\n\n"

    def plots(self, results: Sequence[Result]) -> list[Path]:
        return write_plots(*split(results), self.root)


def split(results: Sequence[Result]) -> tuple[list[EvolveArm], DriftRun | None]:
    """The evolving arms, and the drift run if there was one."""
    drift = next((r for r in results if isinstance(r, DriftRun)), None)
    return [r for r in results if isinstance(r, EvolveArm)], drift


def collect(log: NodeLog, result: EvolveArm) -> None:
    """One node's figures: held-out accuracies, calls, and its progress curve."""
    best: dict[str, float] = {}
    calls: dict[str, int] = {}
    curve: list[tuple[int, float]] = []
    for e in log.events:
        match e:
            case Iteration(category=category, best=score, calls=n):
                best[category], calls[category] = score, n
                curve.append((sum(calls.values()), sum(best.values()) / len(best)))
            case Adoption(adopted=True):
                result.adopted += 1
            case Adoption(adopted=False):
                result.refused += 1
            case Done(static=static, evolved=evolved, calls=total):
                if static is not None and evolved is not None:
                    result.static[log.node], result.evolved[log.node] = static, evolved
                if total is not None:
                    result.calls[log.node] = total
    result.curves[log.node] = curve


def collect_drift(log: NodeLog, run: DriftRun) -> None:
    node = log.node
    for e in log.events:
        match e:
            case Monitor(episodes=at):
                for name in ("drift", "alignment", "coherence"):
                    value = getattr(e, name)
                    if value is not None:
                        getattr(run, name).setdefault(node, []).append((at, value))
                if "drift" in e.changes:
                    if node == run.drifter and run.flagged_at is None:
                        run.flagged_at = at
                    elif node != run.drifter:
                        run.false_alarms += 1
            case PeerWeight(peer=peer, weight=weight) if peer == run.drifter:
                run.weights[node] = min(run.weights.get(node, 1.0), weight)
            case Quarantine(peer=peer, state="quarantined") if peer == run.drifter:
                if node not in run.quarantined_by:
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

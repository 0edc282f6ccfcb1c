"""The federated prompt study (seed 000) with real node processes on this machine.

Three arms on the same question streams and seeds: ``random`` (a strategy at
random), ``local`` (each node learns alone) and ``federated`` (nodes share
Q-tables in their category domains). Each node sees a skewed (non-IID)
category mix; all are evaluated greedily on the same held-out questions.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.experiments.events import Eval, NodeLog
from metamesh.experiments.harness import (
    COORDINATED,
    Arm,
    Finished,
    Harness,
    LateJoiner,
    NodeSpec,
    Process,
    Study,
    plan_arms,
)
from metamesh.experiments.plots import pyplot, save_figure
from metamesh.experiments.progress import Status
from metamesh.learners.prompts.dataset import CATEGORIES

__all__ = [
    "ARMS",
    "COORDINATED",
    "ArmResult",
    "LateJoiner",
    "PromptExperiment",
    "collect",
    "late_line",
    "node_weights",
    "render_table",
    "write_plot",
]

ARMS = ("random", "local", "federated")


def node_weights(index: int, categories: Sequence[str] = CATEGORIES, home: float = 0.40) -> str:
    """Node ``index`` mostly sees two 'home' categories; the others are rare."""
    n = len(categories)
    homes = {categories[(2 * index) % n], categories[(2 * index + 1) % n]}
    rare = (1.0 - home * len(homes)) / max(n - len(homes), 1)
    return ",".join(f"{c}={home if c in homes else rare:.4f}" for c in categories)


@dataclass(slots=True)
class ArmResult:
    arm: str
    accuracy: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    seconds: float = 0.0
    late: LateJoiner | None = None

    @property
    def mean(self) -> float:
        return sum(self.accuracy.values()) / len(self.accuracy) if self.accuracy else 0.0

    def episodes_to(self, target: float) -> float | None:
        """Mean over nodes of the first evaluated episode count at or above ``target``."""
        firsts = []
        for curve in self.curves.values():
            hit = next((ep for ep, acc in curve if acc >= target), None)
            if hit is None:
                return None
            firsts.append(hit)
        return sum(firsts) / len(firsts) if firsts else None


@dataclass(slots=True, kw_only=True)
class PromptExperiment(Study[ArmResult]):
    root: Path
    nodes: int = 4
    episodes: int = 200
    eval_every: int = 25
    pace: float = 0.02
    seed: int = 0
    llm: str = "sim"
    arms: Sequence[str] = ARMS
    coordinator: bool = False
    """Also run the federated arm with a coordinator (``federated+c``) and a late joiner beside it."""
    timeout: float = 300.0

    def arm_plan(self) -> list[Arm]:
        return plan_arms(self.arms, coordinate="federated" if self.coordinator else None)

    def plot_names(self) -> list[str]:
        return ["accuracy.png"]

    def intro(self) -> str:
        arms = self.arm_names()
        return (
            f"{self.nodes} nodes x {len(arms)} arms ({', '.join(arms)}), "
            f"{self.episodes} questions per node, LLM {self.llm}"
        )

    def _args(self, arm: str, i: int, *, name: str = "", episodes: int = 0, every: int = 0) -> list[str]:
        return ["--profile", "local", "--name", name or f"{arm[:3]}{i}", "--learner", "prompts",
                "--arm", arm, "--llm", self.llm, "--weights", node_weights(i),
                "--episodes", str(episodes or self.episodes), "--eval-every", str(every or self.eval_every),
                "--pace", str(self.pace), "--random-seed", str(self.seed * 100 + i),
                # Every category a node is asked about is worth its domain: rare ones most of all.
                "--domain-enter", "0.02", "--domain-exit", "0.01"]  # fmt: skip

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        fed = arm.kind == "federated"
        return [NodeSpec(f"n{i}", self._args(arm.kind, i), join=fed, wait=fed) for i in range(self.nodes)]

    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        lasts = [log.last(Eval) for log in logs]
        accs = [e.accuracy for e in lasts if e is not None]
        return Status(
            arm.name,
            nodes=len(logs),
            done=sum(e.episodes for e in lasts if e is not None),
            total=self.episodes * len(logs),
            unit="questions",
            finished=sum(log.done is not None for log in logs),
            note=f"accuracy {sum(accs) / len(accs):.2f}" if accs else "",
        )

    def result(self, arm: Arm, nodes: Sequence[Finished]) -> ArmResult:
        result = ArmResult(arm.name)
        for n in nodes:
            collect(n.log, result)
        return result

    def after(self, harness: Harness[ArmResult], arm: Arm, coordinator: Process, result: ArmResult) -> None:
        """Early accuracy of a node learning alone, with the coordinator's priors and without."""
        every = max(self.eval_every // 5, 1)

        def args(name: str) -> list[str]:
            return self._args("local", 0, name=name, episodes=2 * every, every=every)

        def first_accuracy(log: NodeLog) -> float:
            first = log.first(Eval)
            return float("nan") if first is None else first.accuracy

        where = self.root / arm.name
        with_coord, alone = harness.late_joiner(where, args, coordinator, first_accuracy)
        result.late = LateJoiner(with_coord, alone, f"accuracy after {every} questions")

    def document(self, results: Sequence[ArmResult]) -> dict[str, Any]:
        return {
            r.arm: {
                "accuracy": r.accuracy,
                "mean": r.mean,
                "curves": r.curves,
                "best": r.best,
                "episodes_to_80": r.episodes_to(0.8),
                "seconds": round(r.seconds, 1),
                "late_joiner": late_doc(r.late),
            }
            for r in results
        }

    def summary(self, results: Sequence[ArmResult]) -> str:
        text = (
            "\nGreedy accuracy on held-out questions (seed 000 expected: random ~60%, local 70-78%, "
            f"federated ~85%)\n\n{render_table(results)}\n\n"
        )
        federated = next((r for r in results if r.arm == "federated"), None)
        if federated is not None and federated.best:
            text += "Best strategy per category, learned by the federated nodes:\n"
            text += "".join(f"  {cat:<11} {s}\n" for cat, s in sorted(federated.best.items())) + "\n"
        return text

    def plots(self, results: Sequence[ArmResult]) -> list[Path]:
        path = self.root / "accuracy.png"
        return [path] if write_plot(results, path) else []


def late_doc(late: LateJoiner | None) -> dict[str, Any] | None:
    """The late joiner as results.json holds it."""
    return None if late is None else dataclasses.asdict(late)


def collect(log: NodeLog, result: ArmResult) -> bool:
    """Add a node's evaluations to ``result``: its final accuracy (or its last, if it never finished)."""
    curve = [(e.episodes, e.accuracy) for e in log.all(Eval)]
    done = log.done
    final = done.accuracy if done is not None else None
    if final is None and not curve:
        return False
    result.curves[log.node] = curve
    result.accuracy[log.node] = final if final is not None else curve[-1][1]
    if done is not None and done.best and not result.best:
        result.best = dict(done.best)
    return True


def render_table(results: Sequence[ArmResult], target: float = 0.8) -> str:
    """The seed's 'Expected Results' table, measured."""
    nodes = list(results[0].accuracy) if results else []
    width = max(len(n) for r in results for n in r.accuracy) if results else 4
    header = f"{'arm':<13}" + "".join(f"{'node ' + str(i):>{max(width, 7) + 2}}" for i in range(len(nodes)))
    header += f"{'mean':>8}{'episodes to ' + format(target, '.0%'):>18}"
    lines = [header]
    for r in results:
        accs = list(r.accuracy.values())
        reach = r.episodes_to(target)
        row = f"{r.arm:<13}" + "".join(f"{a:>{max(width, 7) + 2}.0%}" for a in accs)
        row += f"{r.mean:>8.1%}{('never' if reach is None else f'{reach:.0f}'):>18}"
        lines.append(row)
    lines += [late_line(r.arm, r.late) for r in results if r.late is not None]
    return "\n".join(lines)


def late_line(arm: str, late: LateJoiner) -> str:
    """What the coordinator gave a node that joined after the arm: its first figure, with and without."""
    return (
        f"\nlate joiner after {arm}, learning alone, {late.metric}: "
        f"{late.with_coordinator:.3g} with the coordinator's meta-parameters, {late.alone:.3g} without"
    )


def write_plot(results: Sequence[ArmResult], path: Path) -> bool:
    """Accuracy over episodes per arm as a PNG; False when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = {"random": "#999999", "local": "#e08a2c", "federated": "#2c7be0", "federated+c": "#1a9850"}
    for r in results:
        episodes = sorted({ep for c in r.curves.values() for ep, _ in c})
        mean = [sum(dict(c).get(ep, 0.0) for c in r.curves.values()) / len(r.curves) for ep in episodes]
        ax.plot(episodes, mean, marker="o", label=f"{r.arm} ({r.mean:.0%})", color=colors.get(r.arm))
    ax.axhline(0.8, color="#cccccc", linestyle="--", linewidth=1)
    ax.set_xlabel("episodes per node")
    ax.set_ylabel("greedy accuracy on held-out questions")
    ax.set_ylim(0.3, 1.0)
    ax.set_title("Prompt-strategy learning: random vs local vs federated")
    ax.legend(loc="lower right")
    save_figure(plt, fig, ax, path)
    return True

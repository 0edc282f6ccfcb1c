"""The federated prompt experiment (seed 000) with real node processes on this machine.

Three arms on the same question streams and seeds: ``random`` (a strategy at
random), ``local`` (each node learns alone) and ``federated`` (nodes share
Q-tables in their category domains). Each node sees a skewed (non-IID)
category mix; all are evaluated greedily on the same held-out questions.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode, stop_all
from metamesh.errors import MetameshError
from metamesh.experiments.outdir import clear
from metamesh.experiments.progress import Status
from metamesh.learners.prompts.dataset import CATEGORIES

__all__ = [
    "ARMS",
    "COORDINATED",
    "ArmResult",
    "LateJoiner",
    "PromptExperiment",
    "node_weights",
    "start_coordinator",
]

log = logging.getLogger(__name__)
ARMS = ("random", "local", "federated")
#: Suffix of an arm run with a coordinator beside its nodes: ``federated+c``.
COORDINATED = "+c"


def node_weights(index: int, categories: Sequence[str] = CATEGORIES, home: float = 0.40) -> str:
    """Node ``index`` mostly sees two 'home' categories; the others are rare."""
    n = len(categories)
    homes = {categories[(2 * index) % n], categories[(2 * index + 1) % n]}
    rare = (1.0 - home * len(homes)) / max(n - len(homes), 1)
    return ",".join(f"{c}={home if c in homes else rare:.4f}" for c in categories)


@dataclass(slots=True)
class LateJoiner:
    """A node started after an arm finished, with only the coordinator to learn from, against one alone."""

    with_coordinator: float
    alone: float
    metric: str


def start_coordinator(home: Path) -> LocalNode:
    """A coordinator process on the local profile, answering within half a second of a change."""
    args = ["--profile", "local", "--name", "coord", "--interval", "0.5"]
    return LocalNode(home, args, command="coordinator").start()


def run_late_joiner(
    root: Path,
    args: Callable[[str], list[str]],
    coordinator: LocalNode,
    metric: Callable[[list[dict[str, Any]]], float],
    timeout: float,
) -> tuple[float, float]:
    """Start two nodes that learn alone, one seeded with the coordinator; ``metric`` of each once done."""
    joiner = LocalNode(root / "late-joiner", [*args("joiner"), "--seed", coordinator.router])
    fresh = LocalNode(root / "late-fresh", args("fresh"))
    nodes = [joiner.launch(), fresh.launch()]
    try:
        for node in nodes:
            node.wait_ready(90.0)
        wait_until_done(nodes, "late joiner", root, timeout, lambda ev: None)
        return metric(joiner.events()), metric(fresh.events())
    finally:
        stop_all(nodes)


@dataclass(slots=True)
class ArmResult:
    arm: str
    accuracy: dict[str, float] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    best: dict[str, str] = field(default_factory=dict)
    qtables_sent: int = 0
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
class PromptExperiment:
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
    progress: Callable[[Status], None] | None = None

    def arm_names(self) -> list[str]:
        """The arms in the order they run, ``federated+c`` included: each is a folder of ``root``."""
        arms = [*self.arms]
        if self.coordinator and "federated" in arms:
            arms.insert(arms.index("federated") + 1, "federated" + COORDINATED)
        return arms

    def outputs(self) -> list[str]:
        """Every name this run writes at the top of ``root``."""
        return [*self.arm_names(), "results.json", "accuracy.png"]

    def run(self) -> list[ArmResult]:
        """Run every arm; an arm's folder left by an earlier run is removed first, nothing else."""
        arms = self.arm_names()
        clear(self.root, arms)
        return [self._run_arm(arm) for arm in arms]

    def _args(self, arm: str, i: int) -> list[str]:
        return [
            "--profile",
            "local",
            "--name",
            f"{arm[:3]}{i}",
            "--learner",
            "prompts",
            "--arm",
            arm,
            "--llm",
            self.llm,
            "--weights",
            node_weights(i),
            "--episodes",
            str(self.episodes),
            "--eval-every",
            str(self.eval_every),
            "--pace",
            str(self.pace),
            "--random-seed",
            str(self.seed * 100 + i),
            # Every category a node is asked about is worth its domain: rare ones most of all.
            "--domain-enter",
            "0.02",
            "--domain-exit",
            "0.01",
        ]

    def _run_arm(self, arm: str) -> ArmResult:
        started = time.monotonic()
        base, coordinated = arm.removesuffix(COORDINATED), arm.endswith(COORDINATED)
        coord = start_coordinator(self.root / arm / "coordinator") if coordinated else None
        procs: list[LocalNode] = []
        result = ArmResult(arm)
        try:
            for i in range(self.nodes):
                args = self._args(base, i)
                if base == "federated":
                    args += ["--wait-peers", str(self.nodes - 1 + coordinated)]
                    seed = coord or (procs[0] if procs else None)
                    if seed is not None:
                        args += ["--seed", seed.router]
                procs.append(LocalNode(self.root / arm / f"n{i}", args).start())
            wait_until_done(procs, arm, self.root / arm, self.timeout, lambda ev: self._report(arm, ev))
            for p in procs:
                self._collect(p, result)
            stop_all(procs)
            if coord is not None:
                result.late = self._late_joiner(arm, coord)
        finally:
            stop_all([*procs, *([coord] if coord else [])])
        result.seconds = time.monotonic() - started
        return result

    def _late_joiner(self, arm: str, coord: LocalNode) -> LateJoiner:
        """Early accuracy of a node learning alone, with the coordinator's priors and without."""
        every = max(self.eval_every // 5, 1)

        def args(name: str) -> list[str]:
            out = self._args("local", 0)
            out[out.index("--name") + 1] = name
            for flag, value in (("--episodes", 2 * every), ("--eval-every", every)):
                out[out.index(flag) + 1] = str(value)
            return out

        def first_accuracy(events: list[dict[str, Any]]) -> float:
            return float(next(e["accuracy"] for e in events if e["event"] == "eval"))

        with_coord, alone = run_late_joiner(self.root / arm, args, coord, first_accuracy, self.timeout)
        return LateJoiner(with_coord, alone, f"accuracy after {every} questions")

    def _collect(self, node: LocalNode, result: ArmResult) -> None:
        collect(node.id, node.events(), result)

    def _report(self, arm: str, events: dict[str, list[dict[str, Any]]]) -> None:
        if self.progress is None:
            return
        lasts = [next((e for e in reversed(ev) if e["event"] == "eval"), None) for ev in events.values()]
        accs = [float(e["accuracy"]) for e in lasts if e is not None]
        self.progress(
            Status(
                arm,
                nodes=len(events),
                done=sum(int(e["episodes"]) for e in lasts if e is not None),
                total=self.episodes * len(events),
                unit="questions",
                finished=sum(any(e["event"] == "done" for e in ev) for ev in events.values()),
                note=f"accuracy {sum(accs) / len(accs):.2f}" if accs else "",
            )
        )


def collect(node: str, events: Sequence[dict[str, Any]], result: ArmResult) -> bool:
    """Add a node's evaluations to ``result``: its final accuracy (or its last, if it never finished)."""
    curve = [(int(e["episodes"]), float(e["accuracy"])) for e in events if e["event"] == "eval"]
    done = next((e for e in events if e["event"] == "done"), None)
    final = done.get("accuracy") if done is not None else None
    if final is None and not curve:
        return False
    result.curves[node] = curve
    result.accuracy[node] = float(final) if final is not None else curve[-1][1]
    if done is not None and not result.best:
        result.best = dict(done.get("best", {}))
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
    lines += [late_line(r) for r in results if r.late is not None]
    return "\n".join(lines)


def late_line(result: ArmResult | Any) -> str:
    """What the coordinator gave a node that joined after the arm: its first figure, with and without."""
    late = result.late
    assert late is not None
    return (
        f"\nlate joiner after {result.arm}, learning alone, {late.metric}: "
        f"{late.with_coordinator:.3g} with the coordinator's meta-parameters, {late.alone:.3g} without"
    )


def wait_until_done(
    procs: Sequence[LocalNode],
    arm: str,
    where: Path,
    timeout: float,
    report: Callable[[dict[str, list[dict[str, Any]]]], None],
) -> None:
    """Poll the nodes' event logs until each has logged ``done``; raise if one dies or time runs out."""
    deadline = time.monotonic() + timeout
    while True:
        events = {p.id: p.events() for p in procs}
        report(events)
        if all(any(e["event"] == "done" for e in ev) for ev in events.values()):
            return
        dead = [p.id for p in procs if not p.alive()]
        if dead:
            raise MetameshError(f"{arm}: node(s) {', '.join(dead)} exited; see {where}")
        if time.monotonic() > deadline:
            raise MetameshError(f"{arm}: not finished within {timeout:.0f} s")
        time.sleep(0.25)


def pyplot() -> Any | None:
    """matplotlib's pyplot on the file-only Agg backend, or None when matplotlib is not installed."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    return plt


def save_figure(plt: Any, fig: Any, ax: Any, path: Path) -> None:
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


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

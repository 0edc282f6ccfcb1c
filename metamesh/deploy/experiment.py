"""The federated prompt experiment (seed 000) with real node processes on this machine.

Three arms on the same question streams and seeds: ``random`` (a strategy at
random), ``local`` (each node learns alone) and ``federated`` (nodes share
Q-tables in their category domains). Each node sees a skewed (non-IID)
category mix; all are evaluated greedily on the same held-out questions.
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode, stop_all
from metamesh.errors import MetameshError
from metamesh.node.prompts.dataset import CATEGORIES

__all__ = ["ARMS", "ArmResult", "PromptExperiment", "node_weights"]

log = logging.getLogger(__name__)
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
    qtables_sent: int = 0
    seconds: float = 0.0

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
    timeout: float = 300.0
    progress: Callable[[str], None] | None = None

    def run(self) -> list[ArmResult]:
        if self.root.exists():
            shutil.rmtree(self.root)
        return [self._run_arm(arm) for arm in self.arms]

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
            "--seed-value",
            str(self.seed * 100 + i),
            # Every category a node is asked about is worth its domain: rare ones most of all.
            "--domain-enter",
            "0.02",
            "--domain-exit",
            "0.01",
        ]

    def _run_arm(self, arm: str) -> ArmResult:
        started = time.monotonic()
        procs: list[LocalNode] = []
        result = ArmResult(arm)
        try:
            for i in range(self.nodes):
                args = self._args(arm, i)
                if arm == "federated":
                    args += ["--wait-peers", str(self.nodes - 1)]
                    if procs:
                        args += ["--seed", procs[0].router]
                procs.append(LocalNode(self.root / arm / f"n{i}", args).start())
            wait_until_done(procs, arm, self.root / arm, self.timeout, lambda ev: self._report(arm, ev))
            for p in procs:
                self._collect(p, result)
        finally:
            stop_all(procs)
        result.seconds = time.monotonic() - started
        return result

    def _collect(self, node: LocalNode, result: ArmResult) -> None:
        events = node.events()
        done = next(e for e in events if e["event"] == "done")
        result.accuracy[node.id] = float(done["accuracy"])
        result.curves[node.id] = [
            (int(e["episodes"]), float(e["accuracy"])) for e in events if e["event"] == "eval"
        ]
        if not result.best:
            result.best = dict(done.get("best", {}))

    def _report(self, arm: str, events: dict[str, list[dict[str, Any]]]) -> None:
        if self.progress is None:
            return
        parts = []
        for node, ev in events.items():
            last = next((e for e in reversed(ev) if e["event"] == "eval"), None)
            parts.append(
                f"{node} ep {last['episodes']:>4} acc {last['accuracy']:.2f}" if last else f"{node} starting"
            )
        self.progress(f"{arm:<9} " + " | ".join(parts))


def render_table(results: Sequence[ArmResult], target: float = 0.8) -> str:
    """The seed's 'Expected Results' table, measured."""
    nodes = list(results[0].accuracy) if results else []
    width = max(len(n) for r in results for n in r.accuracy) if results else 4
    header = f"{'arm':<10}" + "".join(f"{'node ' + str(i):>{max(width, 7) + 2}}" for i in range(len(nodes)))
    header += f"{'mean':>8}{'episodes to ' + format(target, '.0%'):>18}"
    lines = [header]
    for r in results:
        accs = list(r.accuracy.values())
        reach = r.episodes_to(target)
        row = f"{r.arm:<10}" + "".join(f"{a:>{max(width, 7) + 2}.0%}" for a in accs)
        row += f"{r.mean:>8.1%}{('never' if reach is None else f'{reach:.0f}'):>18}"
        lines.append(row)
    return "\n".join(lines)


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
    colors = {"random": "#999999", "local": "#e08a2c", "federated": "#2c7be0"}
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

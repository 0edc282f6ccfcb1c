"""The meta-braider experiment (seed 004) with real node processes on this machine.

Every node learns a braid policy on its own stream of tasks on the simulated
pool: mostly one home task type (non-IID), under every compute budget.
Arms on the same streams and seeds:

* ``local``: each node learns alone;
* ``federated``: nodes average their policies' weights in the ``braid``
  domain after every round (the experts' gossip path).

Every node's final greedy policy is scored on the same held-out tasks per
budget, against fixed baselines computed here on the same tasks and the same
simulated answers: the best single model in hindsight, a uniform ensemble,
and random decisions. Learning curves give the tasks per node each arm
needs to reach a target reward: the best single model's, on the curves' own
held-out set.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode, stop_all
from metamesh.deploy.ports import free_tcp_port
from metamesh.deploy.preload import TORCH_NODE_MODULES
from metamesh.experiments.outdir import clear
from metamesh.experiments.progress import Status
from metamesh.experiments.prompts import pyplot, save_figure, wait_until_done
from metamesh.learners.braid.evaluate import Reward, Summary, best_single, heldout, random_policy, summarise
from metamesh.learners.braid.evaluate import uniform_ensemble as uniform_policy
from metamesh.learners.braid.fusion import SimulatedBackend
from metamesh.learners.braid.pool import SIMULATED_POOL
from metamesh.learners.braid.tasks import DEFAULT_MIX, eval_tasks

__all__ = ["ARMS", "BraidArm", "BraidExperiment", "baselines", "render_table", "single_reward", "write_plots"]

log = logging.getLogger(__name__)

ARMS = ("local", "federated")
HOMES = ("code", "math", "medical", "qa")
#: What the nodes' own held-out curve is measured on (BraidConfig's eval set).
CURVE_SEED, CURVE_PER_BUDGET = 999, 60


def node_mix(index: int, home: float = 0.6) -> str:
    """Node ``index`` mostly sees one home task type; the other types and multi-part tasks share the rest."""
    kinds = [*HOMES, "multi"]
    own = HOMES[index % len(HOMES)]
    rest = (1.0 - home) / (len(kinds) - 1)
    return ",".join(f"{k}={home if k == own else rest:.3f}" for k in kinds)


@dataclass(slots=True)
class BraidArm:
    arm: str
    budgets: dict[str, dict[str, Summary]] = field(default_factory=dict)
    """Budget -> node -> its greedy policy's held-out results."""
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    """Node -> (tasks learned from, held-out reward)."""
    explanations: list[str] = field(default_factory=list)
    new_type: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def mean(self, budget: str, what: str) -> float:
        values = [float(getattr(s, what)) for s in self.budgets.get(budget, {}).values()]
        return sum(values) / len(values) if values else float("nan")

    def mean_curve(self) -> list[tuple[int, float]]:
        """(tasks per node, mean held-out reward over nodes), over the rounds every node reported."""
        curves = [c for c in self.curves.values() if c]
        n = min((len(c) for c in curves), default=0)
        return [(curves[0][i][0], sum(c[i][1] for c in curves) / len(curves)) for i in range(n)]

    def tasks_to(self, target: float) -> int | None:
        """Tasks per node until the nodes' mean held-out reward first reached ``target``; None if never."""
        return next((n for n, r in self.mean_curve() if r >= target), None)


@dataclass(slots=True, kw_only=True)
class BraidExperiment:
    root: Path
    nodes: int = 4
    rounds: int = 30
    tasks_per_round: int = 64
    seed: int = 0
    arms: Sequence[str] = ARMS
    budgets: Sequence[float] = (1.5, 4.0, 10.0)
    latency_limit: float = 3000.0
    pace: float = 0.05
    timeout: float = 300.0
    target: float = 0.625
    """Held-out reward the learning-speed comparison counts tasks to."""
    progress: Callable[[Status], None] | None = None

    def arm_names(self) -> list[str]:
        """The arms in the order they run: each is a folder of ``root``."""
        return [*self.arms]

    def outputs(self) -> list[str]:
        """Every name this run writes at the top of ``root``."""
        return [*self.arm_names(), "results.json", "pareto.png", "learning.png"]

    def run(self) -> tuple[list[BraidArm], dict[str, dict[str, Any]]]:
        """The arms, and the baselines per budget; an arm's folder left by an earlier run is removed first."""
        clear(self.root, self.arm_names())
        return [self._run_arm(arm) for arm in self.arms], baselines(self.budgets, self.latency_limit)

    def _args(self, arm: str, i: int) -> list[str]:
        return ["--profile", "local", "--name", f"{arm[:3]}{i}", "--learner", "braid",
                "--episodes", str(self.rounds), "--tasks-per-round", str(self.tasks_per_round),
                "--task-mix", node_mix(i), "--random-seed", str(self.seed * 100 + i), "--arm", arm,
                "--budgets", ",".join(f"{b:g}" for b in self.budgets),
                "--latency-limit", str(self.latency_limit), "--pace", str(self.pace)]  # fmt: skip

    def _run_arm(self, arm: str) -> BraidArm:
        started = time.monotonic()
        procs: list[LocalNode] = []
        port = free_tcp_port()
        try:
            for i in range(self.nodes):
                args = self._args(arm, i)
                if arm == "federated":
                    args += ["--wait-peers", str(self.nodes - 1)]
                    args += ["--seed", f"tcp://127.0.0.1:{port}"] if i else ["--router-port", str(port)]
                home = self.root / arm / f"node-{i}"
                procs.append(LocalNode(home, args, preload=TORCH_NODE_MODULES).launch())
            for p in procs:
                p.wait_ready(90.0)
            wait_until_done(procs, arm, self.root / arm, self.timeout, lambda ev: self._report(arm, ev))
            result = BraidArm(arm)
            for p in procs:
                collect(p.id, p.events(), result, self.tasks_per_round)
        finally:
            stop_all(procs)
        result.seconds = time.monotonic() - started
        return result

    def _report(self, arm: str, events: dict[str, list[dict[str, Any]]]) -> None:
        if self.progress is None:
            return
        rounds = [
            max((int(e["round"]) for e in ev if e["event"] == "round"), default=0) for ev in events.values()
        ]
        done = sum(any(e["event"] == "done" for e in ev) for ev in events.values())
        self.progress(Status(arm, len(events), sum(rounds), self.rounds * len(events), "rounds", done))


def collect(node: str, events: Sequence[dict[str, Any]], result: BraidArm, tasks_per_round: int) -> None:
    curve = [(int(e["round"]) * tasks_per_round, 1.0 - float(e["heldout_loss"]))
             for e in events if e["event"] == "round"]  # fmt: skip
    result.curves[node] = curve
    for e in events:
        if e["event"] != "braid_eval":
            continue
        for budget, summary in e["budgets"].items():
            result.budgets.setdefault(budget, {})[node] = Summary(**summary)
        if not result.explanations:
            result.explanations = list(e["explanations"])
        result.new_type[node] = e["new_type"]


def baselines(budgets: Sequence[float], latency_limit: float) -> dict[str, dict[str, Any]]:
    """Budget -> baseline -> its results on the nodes' final held-out tasks (same answers)."""
    pool, backend = SIMULATED_POOL, SimulatedBackend(SIMULATED_POOL)
    out: dict[str, dict[str, Any]] = {}
    for b in budgets:
        tasks = heldout(b, latency_limit)
        name, single = best_single(tasks, pool, backend)
        out[f"{b:g}"] = {
            "best single": {"model": name, **single.as_dict()},
            "uniform ensemble": summarise(uniform_policy(pool), tasks, pool, backend).as_dict(),
            "random": summarise(random_policy(pool), tasks, pool, backend).as_dict(),
        }
    return out


def single_reward(budgets: Sequence[float], latency_limit: float) -> float:
    """The best single model's mean reward over budgets on the set the nodes' curves are measured on."""
    pool, backend = SIMULATED_POOL, SimulatedBackend(SIMULATED_POOL)
    rewards = []
    for b in budgets:
        tasks = eval_tasks(
            CURVE_PER_BUDGET, DEFAULT_MIX, budget=b, latency_limit_ms=latency_limit, seed=CURVE_SEED
        )
        rewards.append(best_single(tasks, pool, backend, Reward())[1].reward)
    return sum(rewards) / len(rewards)


def render_table(arms: Sequence[BraidArm], base: dict[str, dict[str, Any]], goal: float) -> str:
    lines = [
        f"{'budget':<8}{'policy':<28}{'quality':>8}{'cost':>7}{'latency':>9}{'reward':>8}{'in limits':>10}"
    ]
    for budget, rows in base.items():
        for a in arms:
            within = min(
                (min(s.within_budget, s.within_latency) for s in a.budgets.get(budget, {}).values()),
                default=float("nan"),
            )
            quality, cost = a.mean(budget, "quality"), a.mean(budget, "cost")
            lines.append(
                f"{budget:<8}{'learned, ' + a.arm:<28}{quality:>8.3f}{cost:>7.2f}"
                f"{a.mean(budget, 'latency_ms'):>7.0f}ms{a.mean(budget, 'reward'):>8.3f}{within:>10.1%}"
            )
        for name, s in rows.items():
            label = f"{name} ({s['model']})" if "model" in s else name
            lines.append(
                f"{'':<8}{label:<28}{s['quality']:>8.3f}{s['cost']:>7.2f}{s['latency_ms']:>7.0f}ms"
                f"{s['reward']:>8.3f}{min(s['within_budget'], s['within_latency']):>10.1%}"
            )
    lines.append("")
    lines.append(f"tasks per node until the nodes' mean held-out reward reached {goal:.3f}:")
    for a in arms:
        n = a.tasks_to(goal)
        lines.append(f"  {a.arm:<10} {'not reached' if n is None else f'{n:,.0f}'}")
    return "\n".join(lines)


def write_plots(
    arms: Sequence[BraidArm], base: dict[str, dict[str, Any]], goal: float, root: Path
) -> list[Path]:
    """pareto.png (quality against cost, per policy and budget) and learning.png (reward against tasks)."""
    plt = pyplot()
    if plt is None:
        return []
    colors = {"learned, local": "#e08a2c", "learned, federated": "#2c7be0", "best single": "#444444",
              "uniform ensemble": "#8c6bb1", "random": "#aaaaaa"}  # fmt: skip
    markers = ["o", "s", "^", "D"]
    fig, ax = plt.subplots(figsize=(7, 4.4), dpi=110)
    for i, (budget, rows) in enumerate(base.items()):
        points = {f"learned, {a.arm}": (a.mean(budget, "cost"), a.mean(budget, "quality")) for a in arms}
        points.update({name: (s["cost"], s["quality"]) for name, s in rows.items()})
        for name, (x, y) in points.items():
            ax.scatter([x], [y], color=colors.get(name, "#000000"), marker=markers[i % len(markers)], s=55,
                       label=name if i == 0 else None)  # fmt: skip
        ax.annotate(f"budget {budget}", points[f"learned, {arms[-1].arm}"] if arms else (0, 0),
                    textcoords="offset points", xytext=(6, 6), fontsize=8)  # fmt: skip
    ax.set_xlabel("mean cost per task (pool cost units)")
    ax.set_ylabel("quality (share of parts answered right)")
    ax.set_title("Quality against cost: marker shape is the budget")
    ax.legend(loc="lower right", fontsize=8)
    save_figure(plt, fig, ax, root / "pareto.png")
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    for a in arms:
        for _, curve in sorted(a.curves.items()):
            if curve:
                xs, ys = zip(*curve, strict=True)
                ax.plot(xs, ys, color=colors[f"learned, {a.arm}"], alpha=0.25, linewidth=0.8)
        mean = a.mean_curve()
        if mean:
            xs, ys = zip(*mean, strict=True)
            ax.plot(
                xs, ys, color=colors[f"learned, {a.arm}"], linewidth=2.2, label=f"{a.arm} (mean of nodes)"
            )
    ax.axhline(goal, color="#444444", linestyle=":", label="target reward")
    ax.set_xlabel("tasks learned from, per node")
    ax.set_ylabel("held-out reward (greedy policy)")
    ax.set_title("Braid policy learning: local vs federated")
    ax.legend(loc="lower right")
    save_figure(plt, fig, ax, root / "learning.png")
    return [root / "pareto.png", root / "learning.png"]

"""The meta-braider experiment (seed 004) with real node processes on this machine.

Every node learns a braid policy on its own stream of tasks on the simulated
pool: mostly one home task type (non-IID), under every compute budget.
Arms on the same streams and seeds:

* ``local``: each node learns alone;
* ``federated``: nodes average their policies' weights in the ``braid``
  domain after every round (the experts' gossip path).

Every node's final greedy policy is scored on the same held-out tasks per
budget, against fixed baselines computed here on the same tasks and the same
simulated answers: the best single model in hindsight, a lookup from task
type to the model of best reward on that type and one to the cheapest model
within 0.02 of the best quality on that type (both chosen on separate
selection tasks, not the held-out ones), a uniform ensemble, and random
decisions. Learning curves give the tasks per node each arm
needs to reach a target reward: the best single model's, on the curves' own
held-out set.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.preload import TORCH_NODE_MODULES
from metamesh.experiments.events import BraidEval, NodeLog, Round
from metamesh.experiments.harness import Arm, Finished, NodeSpec, Study, plan_arms
from metamesh.experiments.plots import pyplot, save_figure
from metamesh.experiments.progress import Status
from metamesh.learners.braid.evaluate import (
    Reward,
    Summary,
    best_single,
    heldout,
    random_policy,
    selection,
    summarise,
    type_lookup,
)
from metamesh.learners.braid.evaluate import uniform_ensemble as uniform_policy
from metamesh.learners.braid.fusion import SimulatedBackend
from metamesh.learners.braid.pool import SIMULATED_POOL, ModelDescriptor, load_pool
from metamesh.learners.braid.tasks import DEFAULT_MIX, eval_tasks

__all__ = [
    "ARMS",
    "BraidArm",
    "BraidExperiment",
    "across_seeds",
    "baselines",
    "render_table",
    "single_reward",
    "write_plots",
]

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
class BraidExperiment(Study[BraidArm]):
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
    pool: str = "sim"
    """The nodes' pool: ``sim`` or a TOML/JSON file of simulated descriptors (``--pool``)."""
    _base: dict[str, dict[str, Any]] | None = field(default=None, init=False, repr=False)

    def arm_plan(self) -> list[Arm]:
        return plan_arms(self.arms)

    def plot_names(self) -> list[str]:
        return ["pareto.png", "learning.png"]

    def baselines(self) -> dict[str, dict[str, Any]]:
        """Budget -> baseline -> its results on the nodes' held-out tasks (computed once)."""
        if self._base is None:
            self._base = baselines(self.budgets, self.latency_limit, load_pool(self.pool))
        return self._base

    def node_args(self, arm: str, i: int) -> list[str]:
        """The ``metamesh node`` arguments of node ``i`` of an arm of kind ``arm``."""
        return ["--profile", "local", "--name", f"{arm[:3]}{i}", "--learner", "braid",
                "--episodes", str(self.rounds), "--tasks-per-round", str(self.tasks_per_round),
                "--task-mix", node_mix(i), "--random-seed", str(self.seed * 1000 + i), "--arm", arm,
                "--budgets", ",".join(f"{b:g}" for b in self.budgets),
                "--latency-limit", str(self.latency_limit), "--pace", str(self.pace),
                "--pool", self.pool]  # fmt: skip

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        fed = arm.kind == "federated"
        return [
            NodeSpec(f"node-{i}", self.node_args(arm.kind, i), join=fed, wait=fed, preload=TORCH_NODE_MODULES)
            for i in range(self.nodes)
        ]

    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        rounds = sum(max((r.round for r in log.all(Round)), default=0) for log in logs)
        done = sum(log.done is not None for log in logs)
        return Status(arm.name, len(logs), rounds, self.rounds * len(logs), "rounds", done)

    def result(self, arm: Arm, nodes: Sequence[Finished]) -> BraidArm:
        result = BraidArm(arm.name)
        for n in nodes:
            collect(n.log, result, self.tasks_per_round)
        return result

    def document(self, results: Sequence[BraidArm]) -> dict[str, Any]:
        return {
            "target_reward": self.target,
            "best_single_reward": single_reward(self.budgets, self.latency_limit, load_pool(self.pool)),
            "baselines": self.baselines(),
            "arms": {
                a.arm: {
                    "budgets": {
                        b: {n: s.as_dict() for n, s in nodes.items()} for b, nodes in a.budgets.items()
                    },
                    "curves": a.curves,
                    "mean_curve": a.mean_curve(),
                    "tasks_to_target": a.tasks_to(self.target),
                    "new_type": a.new_type,
                    "explanations": a.explanations,
                    "seconds": round(a.seconds, 1),
                }
                for a in results
            },
        }

    def summary(self, results: Sequence[BraidArm]) -> str:
        text = "\nHeld-out tasks per budget (learned: mean over nodes; in limits: the worst node)\n\n"
        text += render_table(results, self.baselines(), self.target) + "\n"
        for a in results:
            if a.new_type:
                rows = list(a.new_type.values())
                before = sum(r["before"]["quality"] for r in rows) / len(rows)
                after = sum(r["after"]["quality"] for r in rows) / len(rows)
                text += (
                    f"\nnew task type ({rows[0]['type']}, never trained on), {a.arm}: quality "
                    f"{before:.3f} before, {after:.3f} after {rows[0]['shots']} rated examples "
                    "(mean over nodes)"
                )
        shown = next((a for a in reversed(results) if a.explanations), None)
        if shown is not None:
            text += f"\n\nSample decisions, explained (a {shown.arm} node):\n\n"
            text += "\n\n".join(shown.explanations) + "\n"
        return text + "\n"

    def plots(self, results: Sequence[BraidArm]) -> list[Path]:
        return write_plots(results, self.baselines(), self.target, self.root)


def collect(log: NodeLog, result: BraidArm, tasks_per_round: int) -> None:
    result.curves[log.node] = [(r.round * tasks_per_round, 1.0 - r.heldout_loss) for r in log.all(Round)]
    for e in log.all(BraidEval):
        for budget, summary in e.budgets.items():
            result.budgets.setdefault(budget, {})[log.node] = Summary(**summary)
        if not result.explanations:
            result.explanations = list(e.explanations)
        result.new_type[log.node] = e.new_type


def baselines(
    budgets: Sequence[float], latency_limit: float, pool: Sequence[ModelDescriptor] = SIMULATED_POOL
) -> dict[str, dict[str, Any]]:
    """Budget -> baseline -> its results on the nodes' final held-out tasks (same answers)."""
    backend = SimulatedBackend(pool)
    out: dict[str, dict[str, Any]] = {}
    for b in budgets:
        tasks = heldout(b, latency_limit)
        name, single = best_single(tasks, pool, backend)
        chosen_on = selection(b, latency_limit)
        best_table, best_per_type = type_lookup(chosen_on, pool, backend)
        cheap_table, cheap_per_type = type_lookup(chosen_on, pool, backend, cheapest=True)
        out[f"{b:g}"] = {
            "best single": {"model": name, **single.as_dict()},
            "best per type": {
                "lookup": best_table,
                **summarise(best_per_type, tasks, pool, backend).as_dict(),
            },
            "cheapest per type": {
                "lookup": cheap_table,
                **summarise(cheap_per_type, tasks, pool, backend).as_dict(),
            },
            "uniform ensemble": summarise(uniform_policy(pool), tasks, pool, backend).as_dict(),
            "random": summarise(random_policy(pool), tasks, pool, backend).as_dict(),
        }
    return out


def single_reward(
    budgets: Sequence[float], latency_limit: float, pool: Sequence[ModelDescriptor] = SIMULATED_POOL
) -> float:
    """The best single model's mean reward over budgets on the set the nodes' curves are measured on."""
    backend = SimulatedBackend(pool)
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
              "best per type": "#1a9850", "cheapest per type": "#66bd63",
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


def _spread(values: Sequence[float], digits: int = 3) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.{digits}f} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def across_seeds(docs: Sequence[Mapping[str, Any]]) -> str:
    """Per budget: each learned arm's node-mean quality, cost and reward as median [min-max] over runs
    (one ``results.json`` each), the baselines beside them, and in how many runs the arm's reward was at
    or above the best-per-type lookup's and its cost at or below the cheapest-per-type lookup's."""
    lines = [
        f"{'budget':<8}{'policy':<22}{'quality':>22}{'cost':>22}{'reward':>22} vs lookups, {len(docs)} seeds"
    ]
    for budget, rows in docs[0]["baselines"].items():
        arms = sorted({a for d in docs for a in d["arms"]})
        for arm in arms:
            figures: dict[str, list[float]] = {"quality": [], "cost": [], "reward": []}
            level = cheaper = 0
            for d in docs:
                nodes = d["arms"].get(arm, {}).get("budgets", {}).get(budget, {})
                if not nodes:
                    continue
                for what, values in figures.items():
                    values.append(statistics.fmean(float(n[what]) for n in nodes.values()))
                level += figures["reward"][-1] >= d["baselines"][budget]["best per type"]["reward"]
                cheaper += figures["cost"][-1] <= d["baselines"][budget]["cheapest per type"]["cost"]
            n = len(figures["reward"])
            lines.append(
                f"{budget:<8}{'learned, ' + arm:<22}{_spread(figures['quality']):>22}"
                f"{_spread(figures['cost'], 2):>22}{_spread(figures['reward']):>22}"
                f"   reward >= best per type {level}/{n}, cost <= cheapest per type {cheaper}/{n}"
            )
        for name, row in rows.items():
            lines.append(
                f"{'':<8}{name:<22}{row['quality']:>22.3f}{row['cost']:>22.2f}{row['reward']:>22.3f}"
            )
    return "\n".join(lines)

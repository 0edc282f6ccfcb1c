"""The federated prompt study (seed 000) with real node processes on this machine.

Three arms on the same question streams and seeds: ``random`` (a strategy at
random), ``local`` (each node learns alone) and ``federated`` (nodes share
Q-tables in their category domains). Each node sees a skewed (non-IID)
category mix; all are evaluated greedily on the same held-out questions.
Beside them, measured in the same run (:mod:`.prompt_baselines`): the best
single strategy for every category and the per-category oracle. With
``repeats`` the whole study runs on that many seeds (each seed changes the
question streams and the LLM's draws; the held-out set stays the same) and
the table gives the median and range per arm; an LLM no arm gets right
yields "no strategy learned", never a best-strategy table.
"""

from __future__ import annotations

import dataclasses
import json
import statistics
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
from metamesh.experiments.prompt_baselines import NEAR_ZERO, Baselines, measure_baselines
from metamesh.learners.prompts.dataset import CATEGORIES

__all__ = [
    "ARMS",
    "COORDINATED",
    "NEAR_ZERO",
    "SEED_MARK",
    "ArmResult",
    "LateJoiner",
    "PromptExperiment",
    "base_arm",
    "collect",
    "late_line",
    "learned_policy",
    "node_weights",
    "render_table",
    "seed_of",
    "spread_table",
    "write_plot",
]

ARMS = ("random", "local", "federated")
#: Between an arm's name and its seed, in runs over several seeds: ``federated@2``.
SEED_MARK = "@"
#: The seed's 'Expected Results', which only the simulated default is built to reproduce.
EXPECTED = "seed 000 expected: random ~60%, local 70-78%, federated ~85%"


def seed_of(arm: str, default: int) -> int:
    """The seed of an arm named ``ARM@SEED``, else ``default``."""
    _, mark, seed = arm.rpartition(SEED_MARK)
    return int(seed) if mark and seed.isdigit() else default


def base_arm(arm: str) -> str:
    """``federated+c@2`` -> ``federated+c``."""
    return arm.rpartition(SEED_MARK)[0] if SEED_MARK in arm else arm


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
    repeats: int = 1
    """Seeds ``seed`` to ``seed + repeats - 1``, each a whole run of every arm."""
    baselines: bool = True
    """Measure the best single strategy and the per-category oracle (5 LLM calls per held-out question)."""
    _baselines: dict[int, Baselines] = field(default_factory=dict, init=False, repr=False)

    @property
    def seeds(self) -> list[int]:
        return [self.seed + k for k in range(max(self.repeats, 1))]

    def arm_plan(self) -> list[Arm]:
        plan = plan_arms(self.arms, coordinate="federated" if self.coordinator else None)
        if self.repeats <= 1:
            return plan
        return [Arm(f"{a.name}{SEED_MARK}{s}", a.kind, a.coordinated) for s in self.seeds for a in plan]

    def measured_baselines(self, seed: int) -> Baselines | None:
        """The baselines of ``seed``, measured once (None if switched off)."""
        if self.baselines and seed not in self._baselines:
            self._baselines[seed] = measure_baselines(self.llm, seed=seed)
        return self._baselines.get(seed)

    def plot_names(self) -> list[str]:
        return ["accuracy.png"]

    def intro(self) -> str:
        arms = list(dict.fromkeys(base_arm(a) for a in self.arm_names()))
        seeds = f", seeds {self.seeds[0]}-{self.seeds[-1]}" if self.repeats > 1 else ""
        return (
            f"{self.nodes} nodes x {len(arms)} arms ({', '.join(arms)}), "
            f"{self.episodes} questions per node, LLM {self.llm}{seeds}"
        )

    def _args(
        self, arm: str, i: int, *, seed: int, name: str = "", episodes: int = 0, every: int = 0
    ) -> list[str]:
        return ["--profile", "local", "--name", name or f"{arm[:3]}{i}", "--learner", "prompts",
                "--arm", arm, "--llm", self.llm, "--weights", node_weights(i),
                "--episodes", str(episodes or self.episodes), "--eval-every", str(every or self.eval_every),
                "--pace", str(self.pace), "--random-seed", str(seed * 100 + i),
                # Every category a node is asked about is worth its domain: rare ones most of all.
                "--domain-enter", "0.02", "--domain-exit", "0.01"]  # fmt: skip

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        fed = arm.kind == "federated"
        seed = seed_of(arm.name, self.seed)
        return [
            NodeSpec(f"n{i}", self._args(arm.kind, i, seed=seed), join=fed, wait=fed)
            for i in range(self.nodes)
        ]

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
            seed = seed_of(arm.name, self.seed)
            return self._args("local", 0, seed=seed, name=name, episodes=2 * every, every=every)

        def first_accuracy(log: NodeLog) -> float:
            first = log.first(Eval)
            return float("nan") if first is None else first.accuracy

        where = self.root / arm.name
        with_coord, alone = harness.late_joiner(where, args, coordinator, first_accuracy)
        result.late = LateJoiner(with_coord, alone, f"accuracy after {every} questions")

    def outputs(self) -> list[str]:
        return [*Study.outputs(self), "baselines.json"]

    def baselines_document(self, results: Sequence[ArmResult]) -> dict[str, Any]:
        """What ``baselines.json`` holds: each seed's baselines, and each arm's median and range."""
        return {
            "seeds": {str(s): b.document() for s in self.seeds if (b := self.measured_baselines(s))},
            "over_seeds": {
                arm: {"median": m, "min": lo, "max": hi} for arm, (m, lo, hi) in spread(results).items()
            },
        }

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
        expected = f" ({EXPECTED})" if self.llm == "sim" else ""
        text = f"\nGreedy accuracy on held-out questions{expected}\n"
        for seed in self.seeds:
            mine = [r for r in results if seed_of(r.arm, self.seed) == seed]
            label = f", seed {seed}" if self.repeats > 1 else ""
            b = self.measured_baselines(seed)
            text += f"\n{render_table(mine, extra=baseline_rows(b, label) if b else ())}\n"
            text += f"{BASELINE_NOTE}\n" if b and seed == self.seeds[-1] else ""
        if self.repeats > 1:
            text += "\n" + spread_table(results, [b for s in self.seeds if (b := self.measured_baselines(s))])
        else:
            text += "\n(one seed: the spread shown is over nodes; --seeds 3 gives ranges over seeds)\n"
        return text + "\n" + learned_policy(results, self.seed)

    def plots(self, results: Sequence[ArmResult]) -> list[Path]:
        """The plot; and ``baselines.json`` beside ``results.json`` (which holds the arms only)."""
        (self.root / "baselines.json").write_text(json.dumps(self.baselines_document(results), indent=2))
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


def render_table(
    results: Sequence[ArmResult], target: float = 0.8, *, extra: Sequence[tuple[str, float, str]] = ()
) -> str:
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
    blank = " " * (len(nodes) * (max(width, 7) + 2))
    lines += [f"{name:<13}{blank}{value:>8.1%}   {note}" for name, value, note in extra]
    lines += [late_line(r.arm, r.late) for r in results if r.late is not None]
    return "\n".join(lines)


def late_line(arm: str, late: LateJoiner) -> str:
    """What the coordinator gave a node that joined after the arm: its first figure, with and without."""
    return (
        f"\nlate joiner after {arm}, learning alone, {late.metric}: "
        f"{late.with_coordinator:.3g} with the coordinator's meta-parameters, {late.alone:.3g} without"
    )


def baseline_rows(b: Baselines, label: str = "") -> list[tuple[str, float, str]]:
    """The two baselines as rows of an arm table: name, accuracy, what it is."""
    name, single = b.best_single
    _, oracle = b.oracle
    expected = "" if b.expected_oracle is None else f", table {b.expected_oracle:.0%}"
    return [("best single", single, f"{name}, all{label}"), ("oracle", oracle, f"per category{expected}")]


BASELINE_NOTE = (
    "best single and oracle: every strategy asked every held-out question, the best chosen on them\n"
    "(not learners; scored with fresh LLM draws, so as noisy as the arms)"
)


def spread(results: Sequence[ArmResult]) -> dict[str, tuple[float, float, float]]:
    """Per arm (seed mark dropped): median, min and max of its mean accuracy over the runs."""
    by_arm: dict[str, list[float]] = {}
    for r in results:
        by_arm.setdefault(base_arm(r.arm), []).append(r.mean)
    return {arm: (statistics.median(v), min(v), max(v)) for arm, v in by_arm.items()}


def spread_table(results: Sequence[ArmResult], baselines: Sequence[Baselines]) -> str:
    """Median and range over seeds of every arm, every baseline and the coordinator's difference."""
    rows = dict(spread(results))
    if baselines:
        singles = [b.best_single[1] for b in baselines]
        oracles = [b.oracle[1] for b in baselines]
        rows["best single"] = (statistics.median(singles), min(singles), max(singles))
        rows["oracle"] = (statistics.median(oracles), min(oracles), max(oracles))
    lines = [f"Over {len({seed_of(r.arm, 0) for r in results})} seeds: median (range)"]
    lines += [f"  {arm:<13}{m:>7.1%}  ({lo:.1%}-{hi:.1%})" for arm, (m, lo, hi) in rows.items()]
    fed = {seed_of(r.arm, 0): r.mean for r in results if base_arm(r.arm) == "federated"}
    coord = {seed_of(r.arm, 0): r.mean for r in results if base_arm(r.arm) == "federated" + COORDINATED}
    diffs = [100 * (coord[s] - fed[s]) for s in fed if s in coord]
    if diffs:
        lines.append(
            f"  federated+c - federated: median {statistics.median(diffs):+.1f} points "
            f"(range {min(diffs):+.1f} to {max(diffs):+.1f})"
        )
    return "\n".join(lines) + "\n"


def learned_policy(results: Sequence[ArmResult], seed: int) -> str:
    """The federated nodes' best strategy per category, or why there is none to show."""
    if results and max(r.mean for r in results) <= NEAR_ZERO:
        return (
            f"No strategy learned: every arm scored {NEAR_ZERO:.0%} or less on the held-out questions, "
            "so the LLM answers (almost) nothing right with any strategy; check the model and its prompts.\n"
        )
    federated = next((r for r in results if base_arm(r.arm) == "federated"), None)
    if federated is None or not federated.best:
        return ""
    text = "Best strategy per category, learned by the federated nodes:\n"
    return text + "".join(f"  {cat:<11} {s}\n" for cat, s in sorted(federated.best.items())) + "\n"


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

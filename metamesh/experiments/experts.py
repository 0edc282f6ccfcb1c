"""The experts experiment (seeds 001, 002) with real node processes on this machine.

Nodes of several domains train small mixtures of experts on private,
non-IID synthetic data (each node sees one region of its domain's input
space; each domain has its own function) and are scored on held-out data
of their whole domain. Arms on the same data and seeds:

* ``local``: each node trains alone and stops early: it holds out a quarter of
  its training data and keeps the weights of its best round on it (the table
  also gives its last round, no stopping);
* ``domain``: nodes average weights with the peers of their domain (gossip);
* ``global``: every node averages with every other, across domains (one
  global model, as a single FedAvg server would build);
* ``private``: ``domain`` with clipped, noised updates (differential privacy),
  run when a clipping norm is given;
* ``attacked``: ``domain`` with the last ``poisoners`` nodes of each domain
  publishing poisoned weights (x100, sign-flipped, NaN, random, in turn) and
  the defences off: plain FedAvg, no norm or direction screen, no quarantine;
* ``defended``: the same attack against the defences: norm and direction
  screens, and quarantine of peers caught sending bad weights;
* ``screened``: the defended arm's defences with no attack, what they cost
  when nobody attacks.

Losses of the attacked arms are of the honest nodes only. A private node whose
training loss diverges falls back to training alone (``dp_diverged``); the
summary says at which epsilon that happened. ``--seed`` draws the data, the
initial weights and each node's shuffling and noise; :func:`across_seeds`
gives medians and ranges over the results of several seeds.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from metamesh.deploy.preload import TORCH_NODE_MODULES
from metamesh.experiments.events import Diverged, NodeLog, Quarantine, Round
from metamesh.experiments.harness import (
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
from metamesh.experiments.prompts import late_doc, late_line

__all__ = ["ARMS", "ExpertsArm", "ExpertsExperiment", "across_seeds", "collect", "render_table", "write_plot"]

ARMS = ("local", "domain", "global", "private", "screened", "attacked", "defended")
ATTACKS = ("attacked", "defended")
DOMAINS = ("economic", "medical", "technology")
GLOBAL_NAME = "everyone"


@dataclass(slots=True)
class ExpertsArm:
    arm: str
    loss: dict[str, float] = field(default_factory=dict)
    domain_of: dict[str, str] = field(default_factory=dict)
    curves: dict[str, list[tuple[int, float]]] = field(default_factory=dict)
    epsilon: float | None = None
    seconds: float = 0.0
    late: LateJoiner | None = None
    poisoners: list[str] = field(default_factory=list)
    quarantined: dict[str, list[str]] = field(default_factory=dict)
    """Per honest node, the peers it quarantined."""
    last: dict[str, float] = field(default_factory=dict)
    """Per node, the held-out loss of its last round (``loss`` is after early stopping, if any)."""
    diverged: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    """Per private node whose loss diverged: the round and the epsilon spent by then."""

    @property
    def mean(self) -> float:
        return sum(self.loss.values()) / len(self.loss) if self.loss else float("nan")

    @property
    def last_mean(self) -> float:
        return sum(self.last.values()) / len(self.last) if self.last else float("nan")

    def domain_mean(self, domain: str) -> float:
        values = [v for n, v in self.loss.items() if self.domain_of[n] == domain]
        return sum(values) / len(values) if values else float("nan")


@dataclass(slots=True, kw_only=True)
class ExpertsExperiment(Study[ExpertsArm]):
    root: Path
    domains: Sequence[str] = DOMAINS
    per_domain: int = 4
    rounds: int = 10
    samples: int = 128
    pace: float = 0.3
    seed: int = 0
    arms: Sequence[str] = ("local", "domain", "global")
    dp_clip: float = 0.1
    dp_noise: float = 1.0
    coordinator: bool = False
    """Also run the domain arm with a coordinator (``domain+c``) and a late joiner beside it."""
    poisoners: int = 2
    """Attacked arms: nodes per domain that publish poisoned weights."""
    quarantine_above: float = 2.0
    """Defended arm: a peer's score past which it is quarantined (three bad offsets in a row;
    a node judges the offset at hand once per round, so in a short run a poisoner's offsets
    that arrive between two merges are not all charged)."""
    timeout: float = 300.0

    def arm_plan(self) -> list[Arm]:
        return plan_arms(self.arms, coordinate="domain" if self.coordinator else None)

    def plot_names(self) -> list[str]:
        return ["loss.png"]

    def intro(self) -> str:
        arms = self.arm_names()
        nodes = self.per_domain * len(self.domains)
        return f"{nodes} nodes x {len(arms)} arms ({', '.join(arms)}), {self.rounds} rounds per node"

    def _args(self, arm: str, domain: str, part: int, name: str) -> list[str]:
        seed = self.seed  # the run's seed: the data, w0, and (with domain and part) each node's own seed
        args = ["--profile", "local", "--name", name, "--learner", "experts", "--domain", domain,
                "--part", str(part), "--regions", str(min(self.per_domain, 4)),
                "--samples", str(self.samples), "--episodes", str(self.rounds), "--pace", str(self.pace),
                "--random-seed", str(seed), "--arm", "local" if arm == "local" else "federated"]  # fmt: skip
        if arm == "global":
            args += ["--share-domain", GLOBAL_NAME, "--domain", GLOBAL_NAME]
        if arm == "private":
            args += ["--dp-clip", str(self.dp_clip), "--dp-noise", str(self.dp_noise)]
        if arm in ATTACKS and self.is_poisoner(part):
            args += ["--poison", "cycle"]
        if arm == "attacked":
            args += ["--norm-factor", "0", "--quarantine-above", "1e9"]
        if arm in ("defended", "screened"):
            args += ["--min-cosine", "0.05", "--quarantine-above", str(self.quarantine_above)]
            args += ["--quarantine-below", str(self.quarantine_above / 4)]
        return args

    def is_poisoner(self, part: int) -> bool:
        return part >= self.per_domain - self.poisoners

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        # Every node starts at once (node 0 on a port chosen up front): each imports torch,
        # seconds apiece on a small machine, and they would otherwise wait for node 0.
        shared = arm.kind != "local"
        tag = arm.name[:3] + ("c" if arm.coordinated else "")
        return [
            NodeSpec(
                f"{domain}-{part}",
                self._args(arm.kind, domain, part, f"{tag}-{domain[:3]}{part}"),
                join=shared,
                wait=shared,
                preload=TORCH_NODE_MODULES,
                group=domain,
                role="poisoner" if arm.kind in ATTACKS and self.is_poisoner(part) else "",
            )
            for domain in self.domains
            for part in range(self.per_domain)
        ]

    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        lasts = [log.last(Round) for log in logs]
        losses = [r.heldout_loss for r in lasts if r is not None]
        return Status(
            arm.name,
            nodes=len(logs),
            done=sum(r.round for r in lasts if r is not None),
            total=self.rounds * len(logs),
            unit="rounds",
            finished=sum(log.done is not None for log in logs),
            note=f"held-out loss {sum(losses) / len(losses):.3f}" if losses else "",
        )

    def result(self, arm: Arm, nodes: Sequence[Finished]) -> ExpertsArm:
        result = ExpertsArm(arm.name, domain_of={n.node: n.spec.group for n in nodes})
        for n in nodes:
            if n.spec.role == "poisoner":
                result.poisoners.append(n.node)
                continue
            collect(n.log, result)
            caught = {q.peer for q in n.log.all(Quarantine) if q.state == "quarantined"}
            result.quarantined[n.node] = sorted(caught)
        return result

    def after(self, harness: Harness[ExpertsArm], arm: Arm, coordinator: Process, result: ExpertsArm) -> None:
        """First-round loss of a node training alone, from the coordinator's initial weights and from w0."""

        def args(name: str) -> list[str]:
            out = self._args("local", self.domains[0], 0, name)
            out[out.index("--episodes") + 1] = "1"
            return out

        def first_loss(log: NodeLog) -> float:
            first = log.first(Round)
            return float("nan") if first is None else first.heldout_loss

        with_coord, alone = harness.late_joiner(self.root / arm.name, args, coordinator, first_loss)
        result.late = LateJoiner(with_coord, alone, f"{self.domains[0]} held-out loss after one round")

    def document(self, results: Sequence[ExpertsArm]) -> dict[str, Any]:
        return {
            r.arm: {
                "loss": r.loss,
                "mean": r.mean,
                "domain_mean": {d: r.domain_mean(d) for d in self.domains},
                "curves": r.curves,
                "epsilon": r.epsilon,
                "seconds": round(r.seconds, 1),
                "late_joiner": late_doc(r.late),
                "poisoners": r.poisoners,
                "quarantined": r.quarantined,
                "last": r.last,
                "last_mean": r.last_mean,
                "diverged": {n: {"round": d[0], "epsilon": d[1]} for n, d in r.diverged.items()},
            }
            for r in results
        }

    def summary(self, results: Sequence[ExpertsArm]) -> str:
        text = "\nMean squared error on held-out data of each node's whole domain (lower is better)\n\n"
        text += render_table(results, self.domains) + "\n\n"
        private = next((r for r in results if r.arm == "private"), None)
        if private is not None and private.epsilon is not None:
            text += (
                f"private: updates clipped to {self.dp_clip} and noised (multiplier {self.dp_noise}); "
                f"epsilon {private.epsilon:.2f} at delta 1e-5 after {self.rounds} rounds "
                "(the most a node spent)\n"
            )
            text += divergence_line(private) + "\n\n"
        for r in results:
            if r.poisoners:
                caught = sum(all(p in q for p in r.poisoners) for q in r.quarantined.values())
                text += (
                    f"{r.arm}: {len(r.poisoners)} poisoners; {caught} of {len(r.quarantined)} honest nodes "
                    "quarantined all of them\n"
                )
        return text

    def plots(self, results: Sequence[ExpertsArm]) -> list[Path]:
        path = self.root / "loss.png"
        return [path] if write_plot(results, path) else []


def collect(log: NodeLog, result: ExpertsArm) -> bool:
    """Add a node's rounds to ``result``: its final held-out loss (or its last, if it never finished)."""
    rounds = log.all(Round)
    if not rounds:
        return False
    done, last = log.done, rounds[-1]
    final = done.heldout_loss if done is not None and done.heldout_loss is not None else last.heldout_loss
    result.loss[log.node] = final
    result.curves[log.node] = [(r.round, r.heldout_loss) for r in rounds]
    result.last[log.node] = last.heldout_loss
    broke = log.first(Diverged)
    if broke is not None:
        result.diverged[log.node] = (broke.round, broke.epsilon)
    epsilon = done.epsilon if done is not None else last.epsilon
    if epsilon is not None:  # the most any node spent: one that fell back stopped spending
        result.epsilon = epsilon if result.epsilon is None else max(result.epsilon, epsilon)
    return True


def render_table(results: Sequence[ExpertsArm], domains: Sequence[str] = DOMAINS) -> str:
    """Mean held-out MSE per domain and overall, and each arm's ratio to training alone."""
    local = next((r for r in results if r.arm == "local"), None)
    header = (
        f"{'arm':<10}" + "".join(f"{d:>12}" for d in domains) + f"{'mean':>9}{'vs local':>10}{'epsilon':>9}"
    )
    lines = [header]
    rows = list(results)
    if local is not None and local.last:
        last = ExpertsArm("local-last", dict(local.last), local.domain_of)
        rows.insert(rows.index(local) + 1, last)
    for r in rows:
        row = (
            f"{r.arm:<10}"
            + "".join(f"{_loss(r.domain_mean(d)):>12}" for d in domains)
            + f"{_loss(r.mean):>9}"
        )
        row += f"{_loss(r.mean / local.mean):>10}" if local is not None and local.mean > 0 else f"{'':>10}"
        row += f"{r.epsilon:>9.1f}" if r.epsilon is not None else f"{'-':>9}"
        lines.append(row)
    lines += [late_line(r.arm, r.late) for r in results if r.late is not None]
    return "\n".join(lines)


def _loss(value: float) -> str:
    """Three decimals, or an exponent when an attack blew the loss up."""
    return f"{value:.3f}" if abs(value) < 1e4 else f"{value:.1e}"


def write_plot(results: Sequence[ExpertsArm], path: Path) -> bool:
    """Mean held-out loss over rounds per arm as a PNG; False when matplotlib is not installed."""
    plt = pyplot()
    if plt is None:
        return False
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    colors = {
        "local": "#e08a2c",
        "domain": "#2c7be0",
        "domain+c": "#1a9850",
        "global": "#999999",
        "private": "#6a3d9a",
        "attacked": "#d73027",
        "defended": "#4575b4",
    }
    for r in results:
        rounds = sorted({rnd for c in r.curves.values() for rnd, _ in c})
        mean = [
            sum(dict(c).get(rnd, float("nan")) for c in r.curves.values()) / len(r.curves) for rnd in rounds
        ]
        ax.plot(rounds, mean, marker="o", label=f"{r.arm} ({r.mean:.3f})", color=colors.get(r.arm))
    ax.set_xlabel("training rounds per node")
    ax.set_ylabel("held-out MSE on the node's whole domain")
    ax.set_yscale("log")
    ax.set_title("Experts: local vs domain gossip vs one global average")
    ax.legend(loc="upper right")
    save_figure(plt, fig, ax, path)
    return True


def divergence_line(private: ExpertsArm) -> str:
    """Where private learning broke down: the nodes whose loss diverged, with the round and epsilon."""
    if not private.diverged:
        return f"private: no node's loss diverged ({len(private.loss)} nodes watched)"
    eps = sorted(e for _, e in private.diverged.values() if e is not None)
    rounds = sorted(r for r, _ in private.diverged.values())
    at = f"epsilon {eps[0]:.2f}-{eps[-1]:.2f}" if eps else "unknown epsilon"
    return (
        f"private: learning broke down on {len(private.diverged)} of {len(private.loss)} nodes, at {at} "
        f"(rounds {rounds[0]}-{rounds[-1]}); they fell back to their best weights and trained alone"
    )


def _spread(values: Sequence[float]) -> str:
    if not values:
        return "-"
    return f"{_loss(statistics.median(values))} [{_loss(min(values))}-{_loss(max(values))}]"


def across_seeds(docs: Sequence[Mapping[str, Any]]) -> str:
    """Median [min-max] over runs (one ``results.json`` each) of each arm's mean held-out loss and of its
    ratio to the early-stopped local baseline of the same run."""
    rows: dict[str, tuple[list[float], list[float]]] = {}
    for doc in docs:
        base = doc.get("local", {}).get("mean")
        arms = [(a, d["mean"]) for a, d in doc.items()]
        if "local" in doc and doc["local"].get("last_mean") is not None:
            arms.insert(1 + list(doc).index("local"), ("local-last", doc["local"]["last_mean"]))
        for arm, mean in arms:
            losses, ratios = rows.setdefault(arm, ([], []))
            losses.append(float(mean))
            if base:
                ratios.append(float(mean) / float(base))
    lines = [f"{'arm':<12}{'mean loss, median [range]':>30}{'vs local (stopped)':>28}   ({len(docs)} seeds)"]
    lines += [
        f"{arm:<12}{_spread(losses):>30}{_spread(ratios):>28}" for arm, (losses, ratios) in rows.items()
    ]
    return "\n".join(lines)

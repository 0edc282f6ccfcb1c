"""The experts experiment (seeds 001, 002) with real node processes on this machine.

Nodes of several domains train small mixtures of experts on private,
non-IID synthetic data (each node sees one region of its domain's input
space; each domain has its own function) and are scored on held-out data
of their whole domain. Arms on the same data and seeds:

* ``local``: each node trains alone;
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

Losses of the attacked arms are of the honest nodes only.
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
from metamesh.experiments.prompts import (
    COORDINATED,
    LateJoiner,
    late_line,
    pyplot,
    run_late_joiner,
    save_figure,
    start_coordinator,
    wait_until_done,
)

__all__ = ["ARMS", "ExpertsArm", "ExpertsExperiment", "collect", "render_table", "write_plot"]

log = logging.getLogger(__name__)

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

    @property
    def mean(self) -> float:
        return sum(self.loss.values()) / len(self.loss) if self.loss else float("nan")

    def domain_mean(self, domain: str) -> float:
        values = [v for n, v in self.loss.items() if self.domain_of[n] == domain]
        return sum(values) / len(values) if values else float("nan")


@dataclass(slots=True, kw_only=True)
class ExpertsExperiment:
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
    progress: Callable[[Status], None] | None = None

    def arm_names(self) -> list[str]:
        """The arms in the order they run, ``domain+c`` included: each is a folder of ``root``."""
        arms = [*self.arms]
        if self.coordinator and "domain" in arms:
            arms.insert(arms.index("domain") + 1, "domain" + COORDINATED)
        return arms

    def outputs(self) -> list[str]:
        """Every name this run writes at the top of ``root``."""
        return [*self.arm_names(), "results.json", "loss.png"]

    def run(self) -> list[ExpertsArm]:
        """Run every arm; an arm's folder left by an earlier run is removed first, nothing else."""
        arms = self.arm_names()
        clear(self.root, arms)
        return [self._run_arm(arm) for arm in arms]

    def _args(self, arm: str, domain: str, part: int) -> list[str]:
        args = [
            "--profile",
            "local",
            "--name",
            f"{arm[:3]}-{domain[:3]}{part}",
            "--learner",
            "experts",
            "--domain",
            domain,
            "--part",
            str(part),
            "--regions",
            str(min(self.per_domain, 4)),
            "--samples",
            str(self.samples),
            "--episodes",
            str(self.rounds),
            "--pace",
            str(self.pace),
            "--random-seed",
            str(self.seed * 1000 + DOMAINS.index(domain) * 100 + part if domain in DOMAINS else part),
            "--arm",
            "local" if arm == "local" else "federated",
        ]
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

    def _run_arm(self, arm: str) -> ExpertsArm:
        started = time.monotonic()
        base, coordinated = arm.removesuffix(COORDINATED), arm.endswith(COORDINATED)
        coord = start_coordinator(self.root / arm / "coordinator") if coordinated else None
        procs: list[LocalNode] = []
        domain_of: dict[str, str] = {}
        total = len(self.domains) * self.per_domain
        # Node 0's ROUTER port is chosen up front so every node can start at once: each imports
        # torch, seconds apiece on a small machine, and they would otherwise wait for node 0.
        seed_port = free_tcp_port()
        seed = coord.router if coord is not None else f"tcp://127.0.0.1:{seed_port}"
        try:
            for domain in self.domains:
                for part in range(self.per_domain):
                    args = self._args(base, domain, part)
                    args[args.index("--name") + 1] = (
                        f"{arm[:3]}{'c' if coordinated else ''}-{domain[:3]}{part}"
                    )
                    if base != "local":
                        args += ["--wait-peers", str(total - 1 + coordinated)]
                        if procs or coord is not None:
                            args += ["--seed", seed]
                        else:
                            args += ["--router-port", str(seed_port)]
                    home = self.root / arm / f"{domain}-{part}"
                    procs.append(LocalNode(home, args, preload=TORCH_NODE_MODULES).launch())
            homes = [d for d in self.domains for _ in range(self.per_domain)]
            for node, domain in zip(procs, homes, strict=True):
                node.wait_ready(90.0)
                domain_of[node.id] = domain
            wait_until_done(procs, arm, self.root / arm, self.timeout, lambda ev: self._report(arm, ev))
            result = ExpertsArm(arm, domain_of=domain_of)
            parts = [part for _ in self.domains for part in range(self.per_domain)]
            for p, part in zip(procs, parts, strict=True):
                if base in ATTACKS and self.is_poisoner(part):
                    result.poisoners.append(p.id)
                    continue
                self._collect(p, result)
                result.quarantined[p.id] = sorted(
                    {
                        e["peer"]
                        for e in p.events()
                        if e["event"] == "quarantine" and e["state"] == "quarantined"
                    }
                )
            stop_all(procs)
            if coord is not None:
                result.late = self._late_joiner(arm, coord)
        finally:
            stop_all([*procs, *([coord] if coord else [])])
        result.seconds = time.monotonic() - started
        return result

    def _late_joiner(self, arm: str, coord: LocalNode) -> LateJoiner:
        """First-round loss of a node training alone, from the coordinator's initial weights and from w0."""

        def args(name: str) -> list[str]:
            out = self._args("local", self.domains[0], 0)
            out[out.index("--name") + 1] = name
            out[out.index("--episodes") + 1] = "1"
            return out

        def first_loss(events: list[dict[str, Any]]) -> float:
            return float(next(e["heldout_loss"] for e in events if e["event"] == "round"))

        with_coord, alone = run_late_joiner(self.root / arm, args, coord, first_loss, self.timeout)
        return LateJoiner(with_coord, alone, f"{self.domains[0]} held-out loss after one round")

    @staticmethod
    def _collect(node: LocalNode, result: ExpertsArm) -> None:
        collect(node.id, node.events(), result)

    def _report(self, arm: str, events: dict[str, list[dict[str, Any]]]) -> None:
        if self.progress is None:
            return
        rounds, losses = [], []
        for ev in events.values():
            last = next((e for e in reversed(ev) if e["event"] == "round"), None)
            rounds.append(int(last["round"]) if last else 0)
            if last:
                losses.append(float(last["heldout_loss"]))
        self.progress(
            Status(
                arm,
                nodes=len(events),
                done=sum(rounds),
                total=self.rounds * len(events),
                unit="rounds",
                finished=sum(any(e["event"] == "done" for e in ev) for ev in events.values()),
                note=f"held-out loss {sum(losses) / len(losses):.3f}" if losses else "",
            )
        )


def collect(node: str, events: Sequence[dict[str, Any]], result: ExpertsArm) -> bool:
    """Add a node's rounds to ``result``: its final held-out loss (or its last, if it never finished)."""
    rounds = [e for e in events if e["event"] == "round"]
    if not rounds:
        return False
    done = next((e for e in events if e["event"] == "done"), rounds[-1])
    result.loss[node] = float(done["heldout_loss"])
    result.curves[node] = [(int(e["round"]), float(e["heldout_loss"])) for e in rounds]
    if "epsilon" in done:
        result.epsilon = float(done["epsilon"])
    return True


def render_table(results: Sequence[ExpertsArm], domains: Sequence[str] = DOMAINS) -> str:
    """Mean held-out MSE per domain and overall, and each arm's ratio to training alone."""
    local = next((r for r in results if r.arm == "local"), None)
    header = (
        f"{'arm':<10}" + "".join(f"{d:>12}" for d in domains) + f"{'mean':>9}{'vs local':>10}{'epsilon':>9}"
    )
    lines = [header]
    for r in results:
        row = (
            f"{r.arm:<10}"
            + "".join(f"{_loss(r.domain_mean(d)):>12}" for d in domains)
            + f"{_loss(r.mean):>9}"
        )
        row += f"{_loss(r.mean / local.mean):>10}" if local is not None and local.mean > 0 else f"{'':>10}"
        row += f"{r.epsilon:>9.1f}" if r.epsilon is not None else f"{'-':>9}"
        lines.append(row)
    lines += [late_line(r) for r in results if r.late is not None]
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

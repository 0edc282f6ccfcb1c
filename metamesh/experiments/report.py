"""Tables and plots from a run directory's event logs, after the fact.

An experiment writes ``RUNDIR/<arm>/<node>/events.jsonl`` for every node
(with ``events.1.jsonl``, ... once it has been rotated, read oldest first); this
rebuilds its results from those logs alone, so a run that was interrupted, or
whose ``results.json`` is gone, can still be reported (a node that never
finished counts with its last evaluation). Which experiment it was is read
from the events: prompt learners log ``eval``, experts log ``round``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from metamesh.errors import MetameshError
from metamesh.experiments import experts, prompts
from metamesh.experiments.events import Eval, NodeLog, Round, read_log
from metamesh.experiments.harness import COORDINATED, LateJoiner
from metamesh.node import eventfiles

__all__ = ["Report", "build_report"]

#: Directories beside an arm's nodes that are not its nodes.
NOT_NODES = frozenset({"coordinator", "late-joiner", "late-fresh"})


@dataclass(slots=True)
class Report:
    kind: str  # "prompts" or "experts"
    table: str
    arms: list[Any]
    domains: list[str]

    def plot(self, path: Path) -> bool:
        if self.kind == "prompts":
            return prompts.write_plot(self.arms, path)
        return experts.write_plot(self.arms, path)


def _nodes(arm_dir: Path) -> Iterator[tuple[Path, NodeLog]]:
    for home in sorted(arm_dir.iterdir()):
        if home.is_dir() and home.name not in NOT_NODES and eventfiles.log_files(home / "events.jsonl"):
            yield home, read_log(home)


def _arm_order(name: str) -> tuple[int, int, bool, str]:
    """Seed, then the study's arm order, each arm before its coordinated run."""
    order = [*prompts.ARMS, *experts.ARMS]
    arm = prompts.base_arm(name)
    base = arm.removesuffix(COORDINATED)
    index = order.index(base) if base in order else len(order)
    return (prompts.seed_of(name, -1), index, arm != base, name)


def _late(arm_dir: Path, metric: str) -> LateJoiner | None:
    homes = [arm_dir / name for name in ("late-joiner", "late-fresh")]
    if not all(eventfiles.log_files(h / "events.jsonl") for h in homes):
        return None
    firsts = []
    for home in homes:
        log = read_log(home)
        first = log.first(Eval) if metric == "prompts" else log.first(Round)
        if first is None:
            return None
        firsts.append(first.accuracy if isinstance(first, Eval) else first.heldout_loss)
    label = "accuracy at the first evaluation" if metric == "prompts" else "held-out loss after one round"
    return LateJoiner(firsts[0], firsts[1], label)


def build_report(root: Path) -> Report:
    """Rebuild an experiment's table from ``root/<arm>/<node>/events.jsonl``. Raises MetameshError."""
    if not root.is_dir():
        raise MetameshError(f"{root} is not a directory")
    arm_dirs = sorted((d for d in root.iterdir() if d.is_dir()), key=lambda d: _arm_order(d.name))
    logs = {d.name: list(_nodes(d)) for d in arm_dirs}
    logs = {arm: nodes for arm, nodes in logs.items() if nodes}
    if not logs:
        raise MetameshError(f"no event logs under {root}/<arm>/<node>/events.jsonl: is it a run directory?")
    every = [log for nodes in logs.values() for _, log in nodes]
    if any(log.first(Eval) for log in every):
        return _prompts_report(root, logs)
    if any(log.first(Round) for log in every):
        return _experts_report(root, logs)
    raise MetameshError(f"the event logs under {root} hold no evaluations or training rounds yet")


Logs = dict[str, list[tuple[Path, NodeLog]]]


def _prompts_report(root: Path, logs: Logs) -> Report:
    arms = []
    for arm, nodes in logs.items():
        result = prompts.ArmResult(arm)
        for _, log in nodes:
            prompts.collect(log, result)
        result.late = _late(root / arm, "prompts")
        if result.accuracy:
            arms.append(result)
    table = prompts.render_table(arms)
    if any(prompts.SEED_MARK in a.arm for a in arms):
        table += "\n\n" + prompts.spread_table(arms, [])
    if arms and max(a.mean for a in arms) <= prompts.NEAR_ZERO:
        table += "\n" + prompts.learned_policy(arms, 0)
    return Report("prompts", table, arms, [])


def _experts_report(root: Path, logs: Logs) -> Report:
    arms: list[experts.ExpertsArm] = []
    domains: list[str] = []
    for arm, nodes in logs.items():
        result = experts.ExpertsArm(arm)
        for home, log in nodes:
            if experts.collect(log, result):
                domain = home.name.rsplit("-", 1)[0]  # node homes are DOMAIN-PART
                result.domain_of[log.node] = domain
                if domain not in domains:
                    domains.append(domain)
        result.late = _late(root / arm, "experts")
        if result.loss:
            arms.append(result)
    return Report("experts", experts.render_table(arms, domains), arms, domains)

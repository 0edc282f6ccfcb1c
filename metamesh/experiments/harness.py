"""One harness for every study: arms in order, node processes per arm, progress, results.

A study (:class:`Study`) says what its arms are, which nodes an arm starts
(:class:`NodeSpec`: a folder and a command line), how far an arm has got
(a :class:`~metamesh.experiments.progress.Status`) and what an arm's result is, read
from its nodes' decoded event logs. :class:`Harness` does the rest, the same for
every study: it clears the arms' folders of an earlier run, starts a coordinator
beside an arm that asks for one, launches the arm's nodes together (the first
joining node on a port chosen up front, the others seeded with it), polls their
logs until every node has logged ``done``, stops every process it started --
also on Ctrl-C or a failure, which leave the event logs as they are -- and raises
:class:`ArmFailed`, with the end of the node's log, when a node exits early.

Blocking, single-threaded: it polls the nodes' logs every ``poll`` seconds.
"""

from __future__ import annotations

import abc
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar, Generic, Protocol, TypeVar

from metamesh.deploy.local import LocalNode
from metamesh.deploy.ports import free_tcp_port
from metamesh.errors import MetameshError
from metamesh.experiments.events import NodeLog
from metamesh.experiments.outdir import clear
from metamesh.experiments.progress import Status

__all__ = [
    "COORDINATED",
    "Arm",
    "ArmFailed",
    "Finished",
    "Harness",
    "LateJoiner",
    "Launcher",
    "NodeSpec",
    "Process",
    "Study",
    "local_process",
    "plan_arms",
    "write_artefacts",
]

#: Suffix of an arm run with a coordinator beside its nodes: ``federated+c``.
COORDINATED = "+c"
#: Characters of a failed node's log quoted in the error.
LOG_TAIL = 1500


@dataclass(frozen=True, slots=True)
class Arm:
    """One arm of a study, run in its own folder ``root/name``."""

    name: str
    kind: str
    """What the nodes do: the name without ``+c``."""
    coordinated: bool = False


def plan_arms(arms: Sequence[str], *, coordinate: str | None = None) -> list[Arm]:
    """The arms in the order they run; ``coordinate`` is run again with a coordinator right after itself."""
    plan = []
    for name in arms:
        plan.append(Arm(name, name))
        if name == coordinate:
            plan.append(Arm(name + COORDINATED, name, coordinated=True))
    return plan


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """A node process of an arm: ``metamesh node --home ARM/home ARGS``."""

    home: str
    args: Sequence[str]
    join: bool = False
    """Seeded with the arm's coordinator, else with the first joining node."""
    wait: bool = False
    """Starts learning once every other joining node (and the coordinator) is alive."""
    preload: Sequence[str] = ()
    """Modules of the fork server to start it from (torch: seconds saved per node)."""
    group: str = ""
    """The study's own label, such as the node's domain."""
    role: str = ""
    """The study's own role, such as ``poisoner``."""


@dataclass(frozen=True, slots=True)
class Finished:
    """A node of an arm that logged ``done``, with its log."""

    spec: NodeSpec
    log: NodeLog

    @property
    def node(self) -> str:
        return self.log.node


@dataclass(slots=True)
class LateJoiner:
    """A node started after an arm finished, with only the coordinator to learn from, against one alone."""

    with_coordinator: float
    alone: float
    metric: str


class Process(Protocol):
    """What the harness needs of a node process (:class:`~metamesh.deploy.local.LocalNode` has it)."""

    home: Path

    @property
    def log_path(self) -> Path: ...
    @property
    def id(self) -> str: ...
    @property
    def router(self) -> str: ...
    def launch(self) -> Any: ...
    def wait_ready(self, timeout: float = ...) -> Any: ...
    def alive(self) -> bool: ...
    def events(self) -> list[dict[str, Any]]: ...
    def terminate(self) -> None: ...
    def stop(self, timeout: float = ...) -> int | None: ...


#: Makes a node process: home, arguments, fork-server modules and command (``node`` or ``coordinator``).
Launcher = Callable[[Path, list[str], Sequence[str], str], Process]


def local_process(home: Path, args: list[str], preload: Sequence[str], command: str) -> Process:
    return LocalNode(home, args, preload=preload, command=command)


class ArmFailed(MetameshError):
    """A node of an arm did not start, exited before it was done, or the arm ran out of time."""


class HasSeconds(Protocol):
    seconds: float


R = TypeVar("R", bound=HasSeconds)


class Study(abc.ABC, Generic[R]):
    """A study's definition; the :class:`Harness` runs it. Subclasses are dataclasses with these fields."""

    root: Path
    timeout: float
    together: ClassVar[bool] = True
    """Launch an arm's nodes at once, then wait for each; False: each is ready before the next
    starts (without ``wait``, the first nodes then learn a little longer than the last)."""

    @abc.abstractmethod
    def arm_plan(self) -> list[Arm]:
        """The arms in the order they run."""

    @abc.abstractmethod
    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        """The nodes ``arm`` starts."""

    @abc.abstractmethod
    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        """How far the arm's nodes have got, from their logs so far."""

    @abc.abstractmethod
    def result(self, arm: Arm, nodes: Sequence[Finished]) -> R:
        """The arm's result, from its finished nodes' logs."""

    def after(self, harness: Harness[R], arm: Arm, coordinator: Process, result: R) -> None:
        """Once a coordinated arm's nodes stopped, with its coordinator still up: a late joiner."""

    @abc.abstractmethod
    def plot_names(self) -> list[str]:
        """The plots this study draws at the top of ``root``."""

    @abc.abstractmethod
    def document(self, results: Sequence[R]) -> dict[str, Any]:
        """What ``results.json`` holds."""

    @abc.abstractmethod
    def summary(self, results: Sequence[R]) -> str:
        """What a run prints once its arms are done: the table and what follows it."""

    @abc.abstractmethod
    def plots(self, results: Sequence[R]) -> list[Path]:
        """Draw the plots; the paths written (none when matplotlib is not installed)."""

    def intro(self) -> str:
        """One line on what is about to run, or empty."""
        return ""

    def arm_names(self) -> list[str]:
        """The arms in the order they run: each is a folder of ``root``."""
        return [a.name for a in self.arm_plan()]

    def outputs(self) -> list[str]:
        """Every name this run writes at the top of ``root``."""
        return [*self.arm_names(), "results.json", *self.plot_names()]

    def run(self) -> list[R]:
        """Every arm's result, without a progress display."""
        return Harness(self).run()


@dataclass(slots=True)
class Harness(Generic[R]):
    """Runs a :class:`Study`'s arms one after another; every process it starts is stopped when it returns."""

    study: Study[R]
    progress: Callable[[Status], None] | None = None
    launcher: Launcher = local_process
    poll: float = 0.25
    ready_timeout: float = 90.0
    clock: Callable[[], float] = time.monotonic
    _running: list[Process] = field(default_factory=list)

    def run(self) -> list[R]:
        """Run every arm; an arm's folder left by an earlier run is removed first, nothing else."""
        plan = self.study.arm_plan()
        clear(self.study.root, [a.name for a in plan])
        return [self.run_arm(arm) for arm in plan]

    def run_arm(self, arm: Arm) -> R:
        started = self.clock()
        where = self.study.root / arm.name
        try:
            coord = None
            if arm.coordinated:
                coord = self.start(where / "coordinator", coordinator_args(), command="coordinator")
            specs = self.study.node_specs(arm)
            procs = self.launch(where, specs, coord)
            logs = self.wait_done(arm.name, procs, lambda ls: self.report(arm, ls))
            result = self.study.result(arm, [Finished(s, log) for s, log in zip(specs, logs, strict=True)])
            self.stop(procs)
            if coord is not None:
                self.study.after(self, arm, coord, result)
        finally:
            self.stop(list(self._running))
        result.seconds = self.clock() - started
        return result

    def start(
        self, home: Path, args: list[str], *, preload: Sequence[str] = (), command: str = "node"
    ) -> Process:
        """Launch one process and wait until it is ready; it is stopped when its arm ends."""
        proc = self.launcher(home, args, preload, command)
        self._running.append(proc)
        proc.launch()
        proc.wait_ready(self.ready_timeout)
        return proc

    def launch(self, where: Path, specs: Sequence[NodeSpec], coord: Process | None) -> list[Process]:
        """Launch every node of an arm at once, then wait until each is ready."""
        joining = sum(s.join for s in specs)
        port = free_tcp_port() if joining and coord is None else 0
        procs, first = [], True
        for spec in specs:
            args = [*spec.args]
            if spec.wait:
                args += ["--wait-peers", str(joining - 1 + (coord is not None))]
            if spec.join:
                if coord is not None:
                    args += ["--seed", coord.router]
                elif first:
                    args += ["--router-port", str(port)]
                else:
                    args += ["--seed", f"tcp://127.0.0.1:{port}"]
                first = False
            proc = self.launcher(where / spec.home, args, spec.preload, "node")
            self._running.append(proc)
            proc.launch()
            procs.append(proc)
            if not self.study.together:
                self.ready(where.name, proc)
        for proc in procs if self.study.together else ():
            self.ready(where.name, proc)
        return procs

    def ready(self, arm: str, proc: Process) -> None:
        try:
            proc.wait_ready(self.ready_timeout)
        except MetameshError as exc:
            raise ArmFailed(f"{arm}: {exc}") from exc

    def wait_done(
        self, arm: str, procs: Sequence[Process], report: Callable[[list[NodeLog]], None] = lambda _: None
    ) -> list[NodeLog]:
        """Poll the nodes' logs until each has logged ``done``.

        Raises ArmFailed if one exits first or time runs out."""
        deadline = self.clock() + self.study.timeout
        while True:
            logs = [NodeLog.of(p.id, p.events()) for p in procs]
            report(logs)
            if all(log.done is not None for log in logs):
                return logs
            for p in procs:
                if not p.alive():
                    raise ArmFailed(failure(arm, p))
            if self.clock() > deadline:
                raise ArmFailed(f"{arm}: not finished within {self.study.timeout:.0f} s")
            time.sleep(self.poll)

    def report(self, arm: Arm, logs: Sequence[NodeLog]) -> None:
        if self.progress is not None:
            self.progress(self.study.status(arm, logs))

    def stop(self, procs: Sequence[Process], timeout: float = 10.0) -> None:
        """SIGTERM to all first, then reap each (SIGKILL after ``timeout``)."""
        for p in procs:
            p.terminate()
        for p in procs:
            p.stop(timeout)
            if p in self._running:
                self._running.remove(p)

    def late_joiner(
        self,
        where: Path,
        args: Callable[[str], list[str]],
        coordinator: Process,
        metric: Callable[[NodeLog], float],
    ) -> tuple[float, float]:
        """Two nodes that learn alone, one seeded with the coordinator: ``metric`` of each once done."""
        joiner = self.launcher(
            where / "late-joiner", [*args("joiner"), "--seed", coordinator.router], (), "node"
        )
        fresh = self.launcher(where / "late-fresh", args("fresh"), (), "node")
        self._running += [joiner, fresh]
        for p in (joiner, fresh):
            p.launch()
        for p in (joiner, fresh):
            p.wait_ready(self.ready_timeout)
        try:
            with_coord, alone = self.wait_done("late joiner", [joiner, fresh])
            return metric(with_coord), metric(alone)
        finally:
            self.stop([joiner, fresh])


def write_artefacts(study: Study[R], results: Sequence[R]) -> list[Path]:
    """Write ``results.json`` and the plots into the study's root; the plots written."""
    study.root.mkdir(parents=True, exist_ok=True)
    (study.root / "results.json").write_text(json.dumps(study.document(results), indent=2))
    return study.plots(results)


def coordinator_args() -> list[str]:
    """A coordinator on the local profile, answering within half a second of a change."""
    return ["--profile", "local", "--name", "coord", "--interval", "0.5"]


def failure(arm: str, proc: Process) -> str:
    """Which node of ``arm`` exited, with what code, and the end of its log."""
    code = proc.stop(0)
    try:
        tail = proc.log_path.read_text(errors="replace")[-LOG_TAIL:].strip()
    except OSError:
        tail = ""
    return (
        f"{arm}: node {proc.id} exited (code {code}) before it was done; its log {proc.log_path} ends:\n"
        + (tail or "(empty)")
    )

"""The harness on a fake study whose nodes are in-process fakes: no process is started."""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import pytest

from metamesh.cli import exitcodes
from metamesh.cli.studies import run_study
from metamesh.errors import MetameshError
from metamesh.experiments.events import NodeLog, Round
from metamesh.experiments.harness import (
    Arm,
    ArmFailed,
    Finished,
    Harness,
    NodeSpec,
    Process,
    Study,
    plan_arms,
    write_artefacts,
)
from metamesh.experiments.progress import Status


@dataclass
class FakeNode:
    """Logs ``rounds`` rounds, one per poll, then ``done``; or exits after ``die_after`` polls."""

    home: Path
    args: list[str]
    command: str
    rounds: int = 2
    die_after: int | None = None
    interrupt_after: int | None = None
    polls: int = 0
    stopped: bool = False
    port: int = 0

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.home.name}.log"

    @property
    def id(self) -> str:
        return self.args[self.args.index("--name") + 1] if "--name" in self.args else self.home.name

    @property
    def router(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    def launch(self) -> FakeNode:
        self.home.mkdir(parents=True, exist_ok=True)
        self.log_path.write_text("starting\nTraceback: the learner broke\n")
        self._write({"event": "start", "node": self.id})
        return self

    def wait_ready(self, timeout: float = 30.0) -> FakeNode:
        return self

    def alive(self) -> bool:
        return not self.stopped and (self.die_after is None or self.polls < self.die_after)

    def _write(self, event: dict[str, Any]) -> None:
        with open(self.home / "events.jsonl", "a") as f:
            f.write(json.dumps(event) + "\n")

    def events(self) -> list[dict[str, Any]]:
        self.polls += 1
        if self.interrupt_after is not None and self.polls > self.interrupt_after:
            raise KeyboardInterrupt
        if self.alive() and self.polls <= self.rounds:
            self._write({"event": "round", "round": self.polls, "heldout_loss": 1.0 / self.polls})
            if self.polls == self.rounds:
                self._write({"event": "done", "heldout_loss": 1.0 / self.polls})
        text = (self.home / "events.jsonl").read_text()
        return [json.loads(line) for line in text.splitlines()] + [{"event": "round", "round": "torn"}]

    def terminate(self) -> None:
        self.stopped = True

    def stop(self, timeout: float = 10.0) -> int | None:
        self.stopped = True
        return 1 if self.die_after is not None else 0


@dataclass
class Fleet:
    """Makes fake nodes and remembers each; ``behaviour`` by node name."""

    behaviour: dict[str, dict[str, Any]] = field(default_factory=dict)
    made: list[FakeNode] = field(default_factory=list)

    def __call__(self, home: Path, args: list[str], preload: Sequence[str], command: str) -> Process:
        name = args[args.index("--name") + 1] if "--name" in args else home.name
        node = FakeNode(home, args, command, port=5000 + len(self.made), **self.behaviour.get(name, {}))
        self.made.append(node)
        return node


@dataclass(slots=True)
class FakeResult:
    arm: str
    losses: dict[str, float]
    seeds: list[int]
    seconds: float = 0.0
    late: tuple[float, float] | None = None


@dataclass(slots=True, kw_only=True)
class FakeStudy(Study[FakeResult]):
    root: Path
    arms: Sequence[str] = ("local", "federated")
    nodes: int = 3
    seed: int = 7
    timeout: float = 30.0

    def arm_plan(self) -> list[Arm]:
        return plan_arms(self.arms, coordinate="federated")

    def plot_names(self) -> list[str]:
        return ["fake.png"]

    def node_specs(self, arm: Arm) -> list[NodeSpec]:
        shared = arm.kind == "federated"
        return [
            NodeSpec(
                f"n{i}",
                ["--name", f"{arm.name}-{i}", "--random-seed", str(self.seed * 100 + i)],
                join=shared,
                wait=shared,
            )
            for i in range(self.nodes)
        ]

    def status(self, arm: Arm, logs: Sequence[NodeLog]) -> Status:
        done = sum(len(log.all(Round)) for log in logs)
        return Status(
            arm.name, len(logs), done, 2 * len(logs), "rounds", sum(log.done is not None for log in logs)
        )

    def result(self, arm: Arm, nodes: Sequence[Finished]) -> FakeResult:
        seeds = [int(n.spec.args[n.spec.args.index("--random-seed") + 1]) for n in nodes]
        losses = {n.node: n.log.done.heldout_loss for n in nodes if n.log.done and n.log.done.heldout_loss}
        return FakeResult(arm.name, losses, seeds)

    def after(self, harness: Harness[FakeResult], arm: Arm, coordinator: Process, result: FakeResult) -> None:
        def first(log: NodeLog) -> float:
            r = log.first(Round)
            return r.heldout_loss if r else float("nan")

        result.late = harness.late_joiner(self.root / arm.name, lambda n: ["--name", n], coordinator, first)

    def document(self, results: Sequence[FakeResult]) -> dict[str, Any]:
        return {r.arm: {"mean": sum(r.losses.values()) / len(r.losses), "late": r.late} for r in results}

    def summary(self, results: Sequence[FakeResult]) -> str:
        return "".join(f"{r.arm} done\n" for r in results)

    def plots(self, results: Sequence[FakeResult]) -> list[Path]:
        return []


def args_for(root: Path) -> argparse.Namespace:
    return argparse.Namespace(out=root, default_out=root, force=False)


def test_every_arm_runs_in_order_with_its_nodes_seeds_and_wiring(tmp_path: Path) -> None:
    stale = tmp_path / "local" / "old-node"
    stale.mkdir(parents=True)
    fleet = Fleet()
    seen: list[Status] = []
    results = Harness(FakeStudy(root=tmp_path), progress=seen.append, launcher=fleet, poll=0).run()
    assert [r.arm for r in results] == ["local", "federated", "federated+c"]
    assert not stale.exists()  # an earlier run's arm folder is cleared, nothing else
    for r in results:
        assert r.seeds == [700, 701, 702] and len(r.losses) == 3 and r.losses == dict.fromkeys(r.losses, 0.5)
    assert {s.arm for s in seen} == {"local", "federated", "federated+c"}
    assert seen[-1].finished == 3
    by_home = {(n.home.parent.name, n.home.name): n for n in fleet.made}
    assert "--seed" not in by_home["local", "n0"].args and "--wait-peers" not in by_home["local", "n0"].args
    fed = [by_home["federated", f"n{i}"].args for i in range(3)]
    port = fed[0][fed[0].index("--router-port") + 1]
    assert all(a[a.index("--seed") + 1] == f"tcp://127.0.0.1:{port}" for a in fed[1:])
    assert all(a[a.index("--wait-peers") + 1] == "2" for a in fed)
    coord = by_home["federated+c", "coordinator"]
    assert coord.command == "coordinator"
    for i in range(3):
        args = by_home["federated+c", f"n{i}"].args
        assert args[args.index("--seed") + 1] == coord.router and args[args.index("--wait-peers") + 1] == "3"
    joiner = by_home["federated+c", "late-joiner"].args
    assert (
        joiner[joiner.index("--seed") + 1] == coord.router
        and "--seed" not in by_home["federated+c", "late-fresh"].args
    )
    assert results[2].late == (1.0, 1.0) and results[0].late is None
    assert all(n.stopped for n in fleet.made)


def test_results_json_holds_the_studys_document_and_the_run_prints_where_it_is(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    study = FakeStudy(root=tmp_path / "run", arms=["local"])
    results = Harness(study, launcher=Fleet(), poll=0).run()
    assert write_artefacts(study, results) == []
    assert json.loads((tmp_path / "run" / "results.json").read_text()) == {
        "local": {"mean": 0.5, "late": None}
    }
    study = FakeStudy(root=tmp_path / "cli", arms=["local"])
    assert run_study(study, args_for(study.root), "experiment fake", launcher=Fleet(), poll=0) == exitcodes.OK
    out = capsys.readouterr().out
    assert out.startswith("local done\n") and f"Results:     {study.root / 'results.json'}" in out
    assert "Plot:        skipped" in out
    marker = json.loads((study.root / ".metamesh-run").read_text())
    assert marker["outputs"] == ["local", "results.json", "fake.png"]


def test_a_node_that_exits_fails_its_arm_with_the_end_of_its_log_and_stops_every_node(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet({"federated-1": {"die_after": 1}})
    study = FakeStudy(root=tmp_path)
    with pytest.raises(ArmFailed, match=r"federated: node federated-1 exited \(code 1\)") as caught:
        Harness(study, launcher=fleet, poll=0).run()
    assert "the learner broke" in str(caught.value) and str(tmp_path / "federated" / "n1.log") in str(
        caught.value
    )
    assert all(n.stopped for n in fleet.made)
    fleet = Fleet({"federated-1": {"die_after": 1}})
    study = FakeStudy(root=tmp_path / "cli")
    code = run_study(study, args_for(study.root), "experiment fake", launcher=fleet, poll=0)
    assert code == exitcodes.FAILURE and "the learner broke" in capsys.readouterr().err
    assert all(n.stopped for n in fleet.made) and not (study.root / "results.json").exists()


def test_an_interrupted_run_stops_every_node_and_leaves_the_event_logs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fleet = Fleet({"federated-0": {"interrupt_after": 1}})
    code = run_study(FakeStudy(root=tmp_path), args_for(tmp_path), "experiment fake", launcher=fleet, poll=0)
    assert code == exitcodes.INTERRUPTED and "every node process was stopped" in capsys.readouterr().err
    assert all(n.stopped for n in fleet.made)
    for arm, nodes in (("local", 3), ("federated", 3)):
        logs = sorted((tmp_path / arm).glob("n*/events.jsonl"))
        assert len(logs) == nodes, arm
    assert '"done"' in (tmp_path / "local" / "n0" / "events.jsonl").read_text()
    assert not (tmp_path / "results.json").exists()


def test_a_node_that_never_comes_up_fails_its_arm_and_stops_the_others(tmp_path: Path) -> None:
    class NeverReady(FakeNode):
        def wait_ready(self, timeout: float = 30.0) -> FakeNode:
            raise MetameshError(f"node in {self.home} did not start: Traceback: the learner broke")

    made: list[FakeNode] = []

    def launcher(home: Path, args: list[str], preload: Sequence[str], command: str) -> Process:
        kind = NeverReady if home.name == "n2" else FakeNode
        made.append(kind(home, args, command))
        return made[-1]

    with pytest.raises(ArmFailed, match=r"^local: node in .*n2 did not start: Traceback: the learner broke"):
        Harness(FakeStudy(root=tmp_path), launcher=launcher, poll=0).run()
    assert len(made) == 3 and all(n.stopped for n in made)


def test_a_study_may_start_its_nodes_one_after_another(tmp_path: Path) -> None:
    order: list[str] = []

    class Traced(FakeNode):
        def launch(self) -> FakeNode:
            order.append(f"launch {self.home.name}")
            return super().launch()

        def wait_ready(self, timeout: float = 30.0) -> FakeNode:
            order.append(f"ready {self.home.name}")
            return self

    def launcher(home: Path, args: list[str], preload: Sequence[str], command: str) -> Process:
        return Traced(home, args, command)

    @dataclass(slots=True, kw_only=True)
    class OneByOne(FakeStudy):
        together: ClassVar[bool] = False

    Harness(OneByOne(root=tmp_path, arms=["local"], nodes=2), launcher=launcher, poll=0).run()
    assert order == ["launch n0", "ready n0", "launch n1", "ready n1"]
    order.clear()
    Harness(FakeStudy(root=tmp_path, arms=["local"], nodes=2), launcher=launcher, poll=0).run()
    assert order == ["launch n0", "launch n1", "ready n0", "ready n1"]


def test_an_arm_that_does_not_finish_in_time_fails(tmp_path: Path) -> None:
    clock = iter(range(0, 1000, 10))
    study = FakeStudy(root=tmp_path, arms=["local"], timeout=15)
    fleet = Fleet({f"local-{i}": {"rounds": 100} for i in range(3)})
    with pytest.raises(ArmFailed, match="not finished within 15 s"):
        Harness(study, launcher=fleet, poll=0, clock=lambda: float(next(clock))).run()
    assert all(n.stopped for n in fleet.made)


def test_plan_arms_puts_the_coordinated_arm_right_after_its_own() -> None:
    plan = plan_arms(["random", "local", "federated", "x"], coordinate="federated")
    assert [a.name for a in plan] == ["random", "local", "federated", "federated+c", "x"]
    assert [a.kind for a in plan if a.coordinated] == ["federated"]
    assert plan_arms(["local"], coordinate="federated") == [Arm("local", "local")]

"""Learners are plugins: registered by name in the ``metamesh.learners`` entry-point group.

The built-in learners register like any other, and a learner from a separate distribution
(tests/fixtures/counter_learner), installed into a private directory, runs with
``metamesh node --learner counter`` next to a built-in node, in real processes.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
from metamesh.errors import ConfigError
from metamesh.learners.factory import GROUP, build_learner, installed_learners
from metamesh.node.config import load_config
from tests.cluster import Cluster, wait_until

ROOT = Path(__file__).resolve().parent.parent
FIXTURE = ROOT / "tests" / "fixtures" / "counter_learner"


def test_every_built_in_learner_is_registered_as_pyproject_declares() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"][GROUP]
    installed = installed_learners()
    assert set(declared) == {"none", "prompts", "evolve", "experts", "braid", "coordinator"}
    assert {name: installed[name].value for name in declared} == declared, (
        "the installed metadata is stale: pip install -e ."
    )


def test_an_unknown_learner_is_one_line_naming_the_installed_ones(tmp_path: Path) -> None:
    config = load_config(profile="local", overrides={"home": tmp_path, "learner": "nosuch"})
    with pytest.raises(ConfigError) as caught:
        build_learner(config)
    message = str(caught.value)
    assert "\n" not in message and "'nosuch'" in message
    assert "installed learners: braid, coordinator, evolve, experts, none, prompts" in message


def test_none_is_no_learner(tmp_path: Path) -> None:
    config = load_config(profile="local", overrides={"home": tmp_path, "learner": "none"})
    assert build_learner(config) is None


@pytest.fixture
def plugin_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fixture distribution, installed into a private directory (the environment is untouched)."""
    target = tmp_path_factory.mktemp("plugins")
    build = tmp_path_factory.mktemp("build")
    source = build / "counter_learner"
    subprocess.run(["cp", "-r", str(FIXTURE), str(source)], check=True, timeout=30)  # builds write here
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(source)],
        check=True, timeout=120, capture_output=True,
    )  # fmt: skip
    return target


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.mark.slow
def test_a_plugin_learner_runs_beside_a_built_in_one_and_its_state_reaches_it(
    plugin_path: Path, cluster: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "PYTHONPATH", os.pathsep.join(filter(None, [str(plugin_path), os.environ.get("PYTHONPATH")]))
    )
    built_in = cluster.start("builtin", "--learner", "prompts", "--llm", "sim", "--domain", "count")
    plugin = cluster.start("plugin", "--learner", "counter", "--domain", "count", "--seed", built_in.router)

    def plugin_state_arrived() -> bool:
        report = built_in.status()
        return report is not None and f"{plugin.id}/insight/count" in report["state"]

    wait_until(plugin_state_arrived, 30, "the plugin learner's insight at the built-in node")
    report = plugin.status()
    assert report is not None and report["learner"]["steps"] > 0


def test_the_plugin_is_unknown_without_its_distribution(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "metamesh", "node", "--profile", "local", "--home", str(tmp_path / "n"),
         "--learner", "counter"],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == exitcodes.CONFIG
    assert done.stderr.strip().count("\n") == 0 and "unknown learner 'counter'" in done.stderr

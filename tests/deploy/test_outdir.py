"""--out never deletes a user's files: a folder is written only if it is new, empty or a run's own."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
from metamesh.experiments import outdir

SMALL = ["--nodes", "1", "--episodes", "25", "--eval-every", "25", "--pace", "0.01"]


def _metamesh(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamesh", *args],
        capture_output=True,
        text=True,
        timeout=100,
        check=False,
        cwd=cwd,
    )


def _tree(root: Path) -> dict[str, str]:
    return {str(p.relative_to(root)): p.read_text() for p in sorted(root.rglob("*")) if p.is_file()}


def _users_folder(root: Path) -> dict[str, str]:
    """A folder a user keeps things in, one of them named like an arm a run writes."""
    (root / "random").mkdir(parents=True)
    (root / "random" / "thesis.tex").write_text("\\chapter{one}")
    (root / "notes.txt").write_text("do not lose")
    return _tree(root)


@pytest.mark.timeout(60)
@pytest.mark.parametrize(
    "command",
    [["experiment", "prompts"], ["experiment", "experts"], ["experiment", "evolve"], ["experiment", "braid"]],
)
def test_a_folder_with_other_files_is_refused_with_one_line_and_left_untouched(
    tmp_path: Path, command: list[str]
) -> None:
    before = _users_folder(tmp_path)
    proc = _metamesh(*command, "--out", str(tmp_path), "--force")
    assert proc.returncode == exitcodes.USAGE, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and str(tmp_path) in lines[0] and "--out" in lines[0], proc.stderr
    assert _tree(tmp_path) == before
    assert not (tmp_path / outdir.MARKER).exists()


@pytest.mark.timeout(60)
def test_demo_with_out_dot_in_a_users_folder_refuses_and_writes_nothing_beside_it(tmp_path: Path) -> None:
    home = tmp_path / "home"
    before = _users_folder(home)
    proc = _metamesh("demo", "--out", ".", *SMALL, cwd=home)
    assert proc.returncode == exitcodes.USAGE, proc.stderr
    assert "no metamesh run wrote it" in proc.stderr
    assert _tree(home) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["home"]


@pytest.mark.timeout(120)
def test_a_second_run_on_its_own_output_needs_force_and_keeps_what_the_user_added(tmp_path: Path) -> None:
    out = tmp_path / "run"
    first = _metamesh("experiment", "prompts", "--out", str(out), "--arms", "random,local", *SMALL)
    assert first.returncode == 0, first.stderr
    assert "\r" not in first.stderr  # stderr is a pipe: plain lines, no redraws
    marker = json.loads((out / outdir.MARKER).read_text())
    assert marker["command"] == "metamesh experiment prompts" and "local" in marker["outputs"]
    (out / "keep.txt").write_text("mine")
    results = (out / "results.json").read_text()

    again = _metamesh("experiment", "prompts", "--out", str(out), "--arms", "random", *SMALL)
    assert again.returncode == exitcodes.USAGE
    assert "use --force to replace" in again.stderr
    assert (out / "results.json").read_text() == results

    forced = _metamesh("experiment", "prompts", "--out", str(out), "--arms", "random", "--force", *SMALL)
    assert forced.returncode == 0, forced.stderr
    assert "replacing the results of an earlier run" in forced.stderr
    assert (out / "keep.txt").read_text() == "mine"
    assert not (out / "local").exists()  # the earlier run's arm, not this run's: removed too
    assert set(json.loads((out / "results.json").read_text())) == {"random"}


def test_claim_marks_a_new_folder_and_refuses_a_file(tmp_path: Path) -> None:
    root = tmp_path / "new"
    assert (
        outdir.claim(root, ["a", "b.json"], command="metamesh x", options={"p": Path("q")}, force=False)
        is False
    )
    assert outdir.earlier_outputs(root) == ["a", "b.json"]
    (tmp_path / "file").write_text("")
    with pytest.raises(outdir.OutputRefused, match="is a file"):
        outdir.claim(tmp_path / "file", [], command="metamesh x", options={}, force=True)


def test_a_damaged_marker_still_marks_a_run_but_only_this_runs_names_are_removed(tmp_path: Path) -> None:
    (tmp_path / outdir.MARKER).write_text("{not json")
    for name in ("arm", "other"):
        (tmp_path / name).mkdir()
    assert outdir.claim(tmp_path, ["arm"], command="metamesh x", options={}, force=True) is True
    assert sorted(p.name for p in tmp_path.iterdir()) == [outdir.MARKER, "other"]


def test_names_that_could_reach_outside_the_folder_are_rejected(tmp_path: Path) -> None:
    for bad in ("..", "a/b", ""):
        with pytest.raises(ValueError):
            outdir.clear(tmp_path, [bad])

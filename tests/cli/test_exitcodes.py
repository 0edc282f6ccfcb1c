"""The same kind of failure exits with the same code in every command, with one line and no traceback."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
from metamesh.cli.main import build_parser, main
from metamesh.errors import ConfigError, HomeInUse, LLMUnavailable, StateError
from metamesh.learners.factory import parse_weights
from metamesh.learners.prompts.dataset import CATEGORIES

pytestmark = pytest.mark.timeout(60)


def metamesh(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "80"}
    return subprocess.run(
        [sys.executable, "-m", "metamesh", *argv],
        capture_output=True,
        text=True,
        timeout=45,
        check=False,
        cwd=cwd,
        env=env,
    )


@pytest.mark.parametrize(
    ("argv", "code", "says"),
    [
        (["cluster", "up", "--nodes", "0"], exitcodes.USAGE, "--nodes must be 1 or more"),
        (["cluster", "up", "--nodes", "abc"], exitcodes.USAGE, "invalid int value"),
        (["cluster", "up", "--learner", "bogus"], exitcodes.USAGE, "choose from 'none', 'prompts'"),
        (["keys", "generate", "--dir", "/proc/no/such"], exitcodes.CONFIG, "cannot write keys in"),
        (["status", "not-an-address"], exitcodes.USAGE, "is not a tcp:// endpoint"),
        (["node", "--home", "h", "--config", "missing.toml"], exitcodes.CONFIG, "cannot read config"),
        (["report", "missing-dir"], exitcodes.USAGE, "is not a directory"),
    ],
)
def test_a_stranger_s_mistake_exits_with_its_kind_s_code(
    tmp_path: Path, argv: list[str], code: int, says: str
) -> None:
    out = metamesh(*argv, cwd=tmp_path)
    assert out.returncode == code, (out.returncode, out.stderr)
    assert says in out.stderr and "Traceback" not in out.stderr, out.stderr


def test_unknown_weights_categories_are_refused_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match=r"unknown category 'mth'.*geography, math"):
        parse_weights("mth=0.5", list(CATEGORIES))
    for bad in ("math=nan", "math=-1", "math=inf", "math", "math=lots"):
        with pytest.raises(ConfigError, match="not CATEGORY=NUMBER"):
            parse_weights(bad, list(CATEGORIES))
    weights = parse_weights("math=0.5, art=0.3", list(CATEGORIES))
    assert weights["math"] == 0.5 and weights["art"] == 0.3
    assert weights["history"] == pytest.approx(0.2 / 4)


def test_a_node_given_an_unknown_category_stops_before_it_starts(tmp_path: Path) -> None:
    out = metamesh("node", "--home", "h", "--learner", "prompts", "--weights", "mth=0.5", cwd=tmp_path)
    assert out.returncode != exitcodes.OK and "unknown category 'mth'" in out.stderr, out.stderr
    assert "math" in out.stderr and "Traceback" not in out.stderr


def test_errors_map_to_their_codes() -> None:
    assert exitcodes.for_error(ConfigError("x")) == exitcodes.CONFIG
    assert exitcodes.for_error(HomeInUse(Path("home"), 42)) == exitcodes.HOME_IN_USE
    assert exitcodes.for_error(LLMUnavailable("x")) == exitcodes.UNREACHABLE
    assert exitcodes.for_error(TimeoutError()) == exitcodes.UNREACHABLE
    assert exitcodes.for_error(StateError("x")) == exitcodes.FAILURE
    assert exitcodes.for_error(KeyboardInterrupt()) == exitcodes.INTERRUPTED


def test_an_error_a_command_does_not_translate_is_one_line_and_its_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from metamesh.cli import report_cmd

    def config_fails(args: object) -> int:
        raise ConfigError("a bad setting")

    def interrupted(args: object) -> int:
        raise KeyboardInterrupt

    monkeypatch.setattr(report_cmd, "run", config_fails)
    assert main(["report", "x"]) == exitcodes.CONFIG
    assert capsys.readouterr().err.endswith("metamesh report: a bad setting\n")
    monkeypatch.setattr(report_cmd, "run", interrupted)
    assert main(["report", "x"]) == exitcodes.INTERRUPTED
    assert "interrupted" in capsys.readouterr().err


def test_help_documents_the_exit_codes_and_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "80")
    text = build_parser().format_help()
    assert "exit codes: 0 ok" in text and "3 config" in text and "130 interrupted" in text
    assert max(len(line) for line in text.splitlines()) <= 80

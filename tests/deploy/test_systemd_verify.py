"""``metamesh deploy systemd`` renders units that systemd accepts, and refuses bad node flags."""

from __future__ import annotations

import getpass
import shutil
import subprocess
import sys
from pathlib import Path, PurePosixPath

import pytest

from metamesh.deploy.systemd import protect_home, user_steps


def deploy(*argv: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamesh", "deploy", "systemd", *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
        cwd=cwd,
    )


def analyze_works(tmp_path: Path) -> str:
    """The path of a systemd-analyze that can verify a unit here, or skip saying why not."""
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    probe = tmp_path / "metamesh-probe.service"
    probe.write_text(f"[Service]\nExecStart={sys.executable} -c pass\n")
    check = subprocess.run([analyze, "verify", str(probe)], capture_output=True, text=True, timeout=60)
    if check.returncode != 0:
        pytest.skip(f"systemd-analyze verify cannot run here: {check.stderr.strip()[:200]}")
    return analyze


def test_the_rendered_unit_passes_systemd_analyze_verify(tmp_path: Path) -> None:
    analyze = analyze_works(tmp_path)
    (tmp_path / "work").mkdir()
    (tmp_path / "work" / "node.toml").write_text("[node]\nbeacon = true\n")
    out = deploy(
        "--name", "n1", "--home", "n1-home", "--",
        "--profile", "lan", "--host", "0.0.0.0", "--config", "node.toml", "--metrics-port", "9464",
        cwd=tmp_path / "work",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    unit = out.stdout
    home = tmp_path / "work" / "n1-home"
    assert f"WorkingDirectory={home}\n" in unit and f"ReadWritePaths={home}\n" in unit
    assert f"--config {tmp_path / 'work' / 'node.toml'}" in unit  # relative paths made absolute
    assert f"ExecStart={sys.executable} -m metamesh node --home {home} --name n1" in unit
    assert f"User={getpass.getuser()}\n" in unit and "Documentation=" not in unit
    path = tmp_path / "metamesh-n1.service"
    path.write_text(unit)
    check = subprocess.run([analyze, "verify", str(path)], capture_output=True, text=True, timeout=60)
    assert check.returncode == 0, check.stderr
    assert "metamesh-n1.service" not in check.stderr, check.stderr


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        (["--bogus-flag"], "unrecognized arguments: --bogus-flag"),
        (["--pub-port", "abc"], "argument --pub-port: invalid int value: 'abc'"),
        (["--seed", "10.0.0.2"], "expected tcp://HOST:PORT"),
        (["--home", "/srv/x"], "give --home before --"),
    ],
)
def test_a_bad_node_flag_is_refused_in_one_line(tmp_path: Path, flags: list[str], expected: str) -> None:
    out = deploy("--name", "n1", "--home", str(tmp_path), "--", *flags)
    assert out.returncode == 2 and out.stdout == ""
    assert len(out.stderr.splitlines()) == 1 and expected in out.stderr, out.stderr


def test_another_user_gets_the_steps_that_create_it(tmp_path: Path) -> None:
    out = deploy("--name", "n1", "--home", str(tmp_path / "h"), "--user", "metamesh-no-such-user")
    assert out.returncode == 0
    assert "User=metamesh-no-such-user\nGroup=metamesh-no-such-user\n" in out.stdout
    assert "useradd --system --user-group" in out.stderr and "metamesh-no-such-user" in out.stderr
    assert f"chown -R metamesh-no-such-user:metamesh-no-such-user {tmp_path / 'h'}" in out.stderr


def test_home_stays_readable_when_the_python_or_the_home_lives_there() -> None:
    srv, venv = PurePosixPath("/var/lib/metamesh/n1"), PurePosixPath("/home/pi/venv/bin/python")
    assert protect_home(srv, PurePosixPath("/usr/bin/python3")) == "true"
    assert protect_home(srv, venv) == "read-only"
    assert protect_home(PurePosixPath("/root/n1"), PurePosixPath("/usr/bin/python3")) == "read-only"
    assert protect_home(PurePosixPath("/homework/n1"), PurePosixPath("/usr/bin/python3")) == "true"
    assert user_steps("svc", srv, exists=True) == [
        "mkdir -p /var/lib/metamesh/n1",
        "chown -R svc:svc /var/lib/metamesh/n1",
    ]

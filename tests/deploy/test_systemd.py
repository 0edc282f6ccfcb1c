import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.cli.main import main


def test_unit_runs_the_node_with_its_flags_and_stops_it_gracefully(
    capsys: pytest.CaptureFixture[str],
) -> None:
    code = main(
        [
            "deploy",
            "systemd",
            "--name",
            "n1",
            "--home",
            "/var/lib/metamesh/n1",
            "--python",
            "/usr/bin/python3",
            "--",
            "--profile",
            "lan",
            "--beacon",
            "--seed",
            "tcp://10.0.0.2:5556",
        ]
    )
    assert code == 0
    unit = capsys.readouterr().out
    assert (
        "ExecStart=/usr/bin/python3 -m metamesh node --home /var/lib/metamesh/n1 --name n1 --profile lan "
        "--beacon --seed tcp://10.0.0.2:5556"
    ) in unit
    assert "KillSignal=SIGTERM" in unit and "Restart=on-failure" in unit
    assert "ReadWritePaths=/var/lib/metamesh/n1" in unit and "[Install]" in unit


def test_coordinator_unit_runs_the_coordinator(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["deploy", "systemd", "--coordinator", "--name", "coord", "--home", "/srv/coord", "--python",
            "/usr/bin/python3", "--", "--router-port", "5556"]  # fmt: skip
    assert main(argv) == 0
    unit = capsys.readouterr().out
    assert (
        "ExecStart=/usr/bin/python3 -m metamesh coordinator --home /srv/coord --name coord --router-port 5556"
        in unit
    )
    assert "Description=metamesh coordinator coord" in unit


def test_unit_passes_systemd_analyze_where_available(tmp_path: Path) -> None:
    analyze = shutil.which("systemd-analyze")
    if analyze is None:
        pytest.skip("systemd-analyze is not installed here")
    unit = tmp_path / "metamesh-n1.service"
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "metamesh",
            "deploy",
            "systemd",
            "--name",
            "n1",
            "--home",
            str(tmp_path),
            "--user",
            "root",
        ],
        capture_output=True,
        text=True,
        check=True,
        timeout=30,
    )
    unit.write_text(out.stdout)
    check = subprocess.run(
        [analyze, "verify", str(unit)], capture_output=True, text=True, timeout=30, check=False
    )
    assert "metamesh-n1.service" not in check.stderr or check.returncode == 0, check.stderr

"""The README's install-and-run blocks work as written on a fresh machine.

Each block marked ``<!-- readme-test: NAME -->`` in README.md is run line by line with
bash, in a copy of the project (what a clone holds), so it makes its own venv and
installs from the registry exactly as a newcomer would. Lines that run a long-lived
process (a node) are started in the background and checked, then stopped with
Ctrl-C; the quickstart's test-suite line is what ``.ci/run`` runs, so it is not run
again from inside the suite.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import signal
import subprocess
import urllib.request
from pathlib import Path

import pytest

from tests.cluster import wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

ROOT = Path(__file__).resolve().parent.parent
MARKER = re.compile(r"<!-- readme-test: (\S+) -->\n```bash\n(.*?)```", re.S)


def readme_blocks() -> dict[str, list[str]]:
    """Marked bash blocks of README.md, by name: their command lines, comments stripped."""
    blocks = {}
    for name, body in MARKER.findall((ROOT / "README.md").read_text()):
        blocks[name] = [line for line in body.splitlines() if line.strip()]
    return blocks


def project_copy(dest: Path) -> Path:
    """The files a fresh clone of this checkout holds (tracked and new, not ignored)."""
    listed = (
        subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT,
            capture_output=True,
            check=True,
        )
        .stdout.decode()
        .split("\0")
    )
    for rel in filter(None, listed):
        src = ROOT / rel
        if src.is_file():
            (dest / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / rel)
    return dest


def fresh_env() -> dict[str, str]:
    """The environment of a new shell: no venv of the test run's own, no metamesh on the path."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("VIRTUAL_ENV", "PYTHON", "METAMESH_"))}
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    return env


def run_lines(lines: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    script = "set -euo pipefail\n" + "\n".join(lines) + "\n"
    return subprocess.run(
        ["bash", "-c", script], cwd=cwd, env=fresh_env(), capture_output=True, text=True, timeout=timeout
    )


def test_the_marked_blocks_are_the_ones_this_file_runs() -> None:
    assert set(readme_blocks()) == {"quickstart", "edge", "lan"}


def test_quickstart_installs_in_a_venv_and_runs_the_demo(tmp_path: Path) -> None:
    lines = readme_blocks()["quickstart"]
    assert lines[0].startswith("python3 -m venv .venv && . .venv/bin/activate"), lines
    suite = [line for line in lines if "python -m pytest" in line]
    assert len(suite) == 1, "the quickstart's second command is the test suite, run by .ci/run"
    clone = project_copy(tmp_path / "clone")
    done = run_lines([line for line in lines if line not in suite], clone, timeout=840)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Greedy accuracy on held-out questions" in done.stdout, done.stdout[-2000:]
    assert (clone / ".venv" / "bin" / "metamesh").exists()
    assert (clone / "metamesh-runs" / "demo" / "results.json").exists()


def test_edge_node_installs_without_torch_serves_metrics_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    *setup, node_line = readme_blocks()["edge"]
    clone = project_copy(tmp_path / "clone")
    done = run_lines(setup, clone, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    venv_python = clone / ".venv" / "bin" / "python"
    no_torch = subprocess.run([venv_python, "-c", "import torch"], capture_output=True, timeout=60)
    assert no_torch.returncode != 0, "the core install pulled in torch"
    library = subprocess.run(
        [venv_python, "-c", "from metamesh import Node, NodeConfig, Learner, run_node"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert library.returncode == 0, library.stderr  # the library surface, in a venv without torch
    port = int(re.search(r"--metrics-port (\d+)", node_line).group(1))  # type: ignore[union-attr]
    log = tmp_path / "edge-node.log"
    with log.open("w") as err:
        node = subprocess.Popen(
            ["bash", "-c", f". .venv/bin/activate && exec {node_line}"],
            cwd=clone,
            env=fresh_env(),
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:

        def metrics() -> str:
            if node.poll() is not None:
                raise AssertionError(f"edge node exited {node.returncode}: {log.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2) as resp:
                    return str(resp.read().decode())
            except OSError:
                return ""

        text = wait_until(metrics, 60, "the edge node's /metrics")
        assert "metamesh_" in text
        node.send_signal(signal.SIGINT)
        assert node.wait(timeout=30) == 0, log.read_text()[-2000:]
        assert (clone / "edge1" / "events.jsonl").exists() or list((clone / "edge1").glob("events*"))
    finally:
        if node.poll() is None:
            node.kill()
            node.wait(timeout=10)


#: Run inside a private mount namespace: /etc/systemd/system and /var/lib are fresh tmpfs there,
#: so the block writes its unit and home as written without touching the host's. This machine runs
#: no service manager, so ``sudo`` and ``systemctl`` are stand-ins that run as root and record the
#: call; the unit itself is checked by systemd-analyze and its ExecStart is run as systemd would.
LAN_HARNESS = """
set -euo pipefail
mount -t tmpfs tmpfs /etc/systemd/system
mount -t tmpfs tmpfs /var/lib
{block}
unit=/etc/systemd/system/metamesh-n1.service
systemd-analyze verify "$unit"
cmd=$(sed -n 's/^ExecStart=//p' "$unit")
cd "$(sed -n 's/^WorkingDirectory=//p' "$unit")"
$cmd &
node=$!
for _ in $(seq 300); do
    grep -q '"event": *"start"' /var/lib/metamesh/n1/events.jsonl 2>/dev/null && break
    kill -0 $node
    sleep 0.1
done
grep -q '"event": *"start"' /var/lib/metamesh/n1/events.jsonl
kill -TERM $node
wait $node
grep -q '"event": *"stop"' /var/lib/metamesh/n1/events.jsonl
echo started-and-stopped
"""


@pytest.mark.skipif(os.geteuid() != 0 or not shutil.which("unshare"), reason="needs root and unshare(1)")
@pytest.mark.skipif(not shutil.which("systemd-analyze"), reason="systemd-analyze is not installed")
def test_lan_systemd_block_renders_a_unit_that_verifies_and_starts_the_node(tmp_path: Path) -> None:
    lines = readme_blocks()["lan"]
    shims = tmp_path / "shims"
    shims.mkdir()
    calls = tmp_path / "systemctl-calls"
    (shims / "sudo").write_text('#!/bin/sh\nexec "$@"\n')
    (shims / "systemctl").write_text(f'#!/bin/sh\necho "$@" >> {shlex.quote(str(calls))}\n')
    for shim in shims.iterdir():
        shim.chmod(0o755)
    # The block as a shell reads it: backslash-continued lines joined.
    block = "\n".join(lines).replace("\\\n", " ")
    env = dict(os.environ, PATH=f"{shims}:{os.environ['PATH']}")
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "bash", "-c", LAN_HARNESS.format(block=block)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert done.stdout.strip().endswith("started-and-stopped")
    assert calls.read_text().splitlines() == ["daemon-reload", "enable --now metamesh-n1"]
    assert not Path("/var/lib/metamesh/n1").exists(), "the block wrote outside its namespace"

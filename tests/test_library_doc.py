"""docs/library.md works as written: its Python blocks run, in real processes.

The first block (start a node) is a program of its own: it runs until SIGINT, which it must
answer by stopping cleanly. The others (a learner, then two nodes running it) are one program,
run to its end: the two nodes' learners must agree on the mean over both nodes' numbers.
"""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

DOC = Path(__file__).resolve().parent.parent / "docs" / "library.md"


def blocks() -> list[str]:
    return re.findall(r"^```python\n(.*?)^```$", DOC.read_text(), flags=re.S | re.M)


def test_the_doc_has_its_three_examples() -> None:
    assert len(blocks()) == 3


@pytest.mark.slow
def test_starting_a_node_runs_until_sigint_and_stops_cleanly(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-c", blocks()[0]],
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()  # the ready callback's line: the node is up
        assert "is up; peers join it with --seed tcp://127.0.0.1:" in line, (
            proc.stderr.read() if proc.stderr else ""
        )
        proc.send_signal(signal.SIGINT)
        _, stderr = proc.communicate(timeout=20)
        assert proc.returncode == 0, stderr
        assert (tmp_path / "alpha").is_dir()  # its home, with the checkpoint a restart resumes from
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.slow
def test_a_learner_and_two_nodes_in_one_process_learn_the_mean_over_both(tmp_path: Path) -> None:
    program = "\n\n".join(blocks()[1:])
    done = subprocess.run(
        [sys.executable, "-c", program], cwd=tmp_path, capture_output=True, text=True, timeout=90
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    first = done.stdout.splitlines()[0]
    a, b, truth = re.findall(r"[-\d.]+", first.replace("a:", "").replace("b:", "").replace("all:", ""))
    assert a == b == truth
    assert "'seen': 200" in done.stdout

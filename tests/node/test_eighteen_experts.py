"""Eighteen torch nodes of ``metamesh experiment experts --per-domain 6`` all finish.

The full run (four arms, 10 rounds) aborted in libzmq (``!_more``, fq.cpp:80) in 2 of 2 tries
before SUB links were unlinked only between whole messages; it takes about 2 minutes here, so
this runs the domain arm for 3 rounds (about 20 s): 18 processes, meshes pruning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

pytest.importorskip("torch")

from tests.cluster import run_experiment

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.timeout(240)]


def test_eighteen_expert_nodes_all_finish_with_none_aborted(tmp_path: Path) -> None:
    out = tmp_path / "out"
    args = ["experts", "--per-domain", "6", "--arms", "domain", "--rounds", "3"]
    _, results = run_experiment(args, out, 200)
    assert "domain" in results
    logs = sorted(out.rglob("*.log"))
    assert len(logs) >= 18
    aborted = [p.name for p in logs if "Assertion failed" in p.read_text(errors="replace")]
    assert not aborted, f"libzmq asserted in {aborted}"

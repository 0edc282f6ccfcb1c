"""Start-to-ready of a node with a torch learner, beside what importing torch alone takes.

A node that learns with torch pays for importing torch before it is ready;
the reference rows are two bare Python processes measured in the same run:
one that imports torch, and one that also builds a ``torch.optim`` optimizer,
which imports torch's compiler (``torch._dynamo``); metamesh's learners use
their own optimizers (``metamesh/learners/optim.py``) to avoid that second cost.
The "forked" rows are how the experiments start their nodes: forked from a
fork server that imported torch once (``metamesh/deploy/preload.py``); the
server is started before those rows are timed, as an experiment's first node
starts it.

Run: ``python bench/learner_start.py`` (``--runs N``, default 5; about 45 s)
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from metamesh.deploy.local import LocalNode, stop_all
from metamesh.deploy.preload import TORCH_NODE_MODULES

REFERENCES = {
    "python -c 'import torch'": "import torch",
    "… and build a torch.optim.SGD": (
        "import torch; torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=0.1)"
    ),
}
LEARNERS = {"experts": ["--domain", "economic"], "braid": []}


def node_start(home: Path, learner: str, preload: tuple[str, ...] = ()) -> float:
    started = time.monotonic()
    args = ["--profile", "local", "--learner", learner, *LEARNERS[learner]]
    node = LocalNode(home, args, preload=preload).launch()
    try:
        node.wait_ready(120)
        return time.monotonic() - started
    finally:
        stop_all([node])


def process_run(code: str) -> float:
    started = time.monotonic()
    subprocess.run([sys.executable, "-c", code], check=True)
    return time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=5, help="launches per row (default 5)")
    runs = parser.parse_args().runs
    with tempfile.TemporaryDirectory() as tmp:
        rows = {
            f"node --learner {name}": [node_start(Path(tmp) / f"{name}-{i}", name) for i in range(runs)]
            for name in LEARNERS
        }
        node_start(Path(tmp) / "warm-up", "experts", TORCH_NODE_MODULES)  # starts the fork server
        rows.update({
            f"node --learner {name}, forked": [
                node_start(Path(tmp) / f"{name}-forked-{i}", name, TORCH_NODE_MODULES) for i in range(runs)
            ]
            for name in LEARNERS
        })  # fmt: skip
    rows.update({label: [process_run(code) for _ in range(runs)] for label, code in REFERENCES.items()})
    reference = statistics.median(rows["python -c 'import torch'"])
    print(f"{'what':<34}{'median':>9}{'min':>8}{'vs import torch':>17}")
    for label, times in rows.items():
        median = statistics.median(times)
        print(f"{label:<34}{median:>8.2f}s{min(times):>7.2f}s{median / reference:>16.2f}x")


if __name__ == "__main__":
    main()

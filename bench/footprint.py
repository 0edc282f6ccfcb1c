"""Idle node footprint without torch: start-to-ready time and RSS after settling.

Reference (same machine class, from the node issue): a Flower SuperNode idles at
about 135 MB RSS plus a 126 MB SuperExec child. Targets: < 60 MB, < 1 s.

Run: ``python bench/footprint.py``
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import time


def main() -> None:
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "metamesh",
            "--log-level",
            "warning",
            "node",
            "--profile",
            "local",
            "--home",
            home,
            "--ready-json",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        proc.stdout.readline()
        ready = time.perf_counter() - start
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle and proc.poll() is None:
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/status") as fh:
            rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024
        torch = subprocess.run(
            [sys.executable, "-c", "import sys, metamesh.node.runtime; print('torch' in sys.modules)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    print(f"start-to-ready {ready:.2f} s (target < 1 s)")
    print(f"idle RSS       {rss:.1f} MB (target < 60 MB; Flower SuperNode ~135 MB + 126 MB SuperExec)")
    print(f"torch imported by the node runtime: {torch}")


if __name__ == "__main__":
    main()

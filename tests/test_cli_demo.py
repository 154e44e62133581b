"""``trimq demo``, as the README's quick start runs it: every part shows its outcome."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_shows_patterns_actors_supervision_and_nodes() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trimq", "demo"],
        capture_output=True,
        text=True,
        timeout=120,  # a guard only: it takes a few seconds
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "PUSH -> PULL over tcp://" in out
    assert "SUB over inproc://news received only: [b'weather', b'sunny']" in out
    assert "nodes: hub joined worker-1 and worker-2 over tcp, CURVE on every connection" in out
    assert "supervision: pool's children on worker-1, worker-1, worker-2, worker-2" in out
    assert "killed worker-1 (SIGKILL)" in out
    assert "pool's children now on worker-2, worker-2, worker-2, worker-2" in out
    # Every job answered once, whatever was handed out again: 0² + ... + 19².
    assert "20 of 20 jobs acknowledged once each" in out
    assert "squares sum to 2470" in out
    assert out.rstrip().endswith("demo finished")

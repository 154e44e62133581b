"""``trimq demo``, as the README's quick start runs it: every part shows its outcome."""

from __future__ import annotations

import subprocess
import sys


def test_the_demo_shows_actors_supervision_nodes_pipelines_and_sockets() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "trimq", "demo"],
        capture_output=True,
        text=True,
        timeout=120,  # a guard only: it takes a few seconds
        check=False,
    )
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert "told it add(1), add(2), add(3); ask get() -> 6" in out
    assert "crashed (on purpose), and answers 'pong #1' under the same ref" in out
    assert "nodes: hub joined worker-1 and worker-2 over tcp, CURVE on every connection" in out
    assert "by value: 'hello hub, from worker-1'" in out
    assert "killed worker-1 (SIGKILL) with items in flight" in out
    assert "2000 of 2000 items out, each exactly once: True" in out
    assert "PUSH -> PULL over tcp://" in out
    assert "SUB over inproc://news received only: [b'weather', b'sunny']" in out
    assert out.rstrip().endswith("demo finished")

"""SIGTERM drains a running pipeline, flushes its journal and ends the program;
a second signal stops it at once; a rerun resumes."""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

PROGRAM = textwrap.dedent(
    """
    import sys
    import trio
    from trimq import actors
    from trimq.pipelines import Pipeline, Stage

    async def slow(x):
        await trio.sleep(0.002)
        return x

    async def main():
        pipeline = Pipeline(Stage(slow, workers=4), name="sig", window=64, drain_timeout=10)
        async with actors.open_node() as node:
            async with pipeline.open(node, range(100_000), journal=sys.argv[1]) as run:
                n = 0
                async for _ in run:
                    n += 1
                    if n == 200:
                        print("running", flush=True)
        print("finished", flush=True)

    trio.run(main)
    """
)


def start(tmp_path: Path) -> subprocess.Popen[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    return subprocess.Popen(
        [sys.executable, str(script), str(tmp_path / "j.sqlite")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_sigterm_drains_and_exits_then_a_second_signal_stops_at_once(tmp_path: Path) -> None:
    proc = start(tmp_path)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "running"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)  # a guard: the drain takes well under a second
    assert proc.returncode == 128 + signal.SIGTERM, err
    assert "finished" not in out  # it did not run to the end of its source

    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

    again = start(tmp_path)  # the journal holds what the first did: a rerun goes on
    assert again.stdout is not None
    assert again.stdout.readline().strip() == "running"
    again.send_signal(signal.SIGINT)
    again.send_signal(signal.SIGINT)  # twice: stop at once
    _, err = again.communicate(timeout=30)
    assert again.returncode != 0
    with sqlite3.connect(tmp_path / "j.sqlite") as db:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)

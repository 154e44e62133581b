"""Journal and resume: kill -9 mid-run, then a rerun that is complete and in order,
redoing only what was in flight; journals of another pipeline or source refused."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage

WINDOW = 256
ITEMS = 5000
KILL_AT = 3000

PROGRAM = (
    textwrap.dedent(
        """
    import os, signal, sys
    import trio
    from trimq import actors
    from trimq.pipelines import Pipeline, Stage, current_item

    journal, calls, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    log = open(calls, "a", buffering=1)

    def work(x):
        log.write(f"{current_item().index}\\n")  # a side effect: at least once
        if current_item().index == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)  # the whole program dies mid-run
        return x * x

    async def main():
        pipeline = Pipeline(Stage(work, workers=3), Stage(str, name="fmt"), name="resume",
                            window=WINDOW)
        async with actors.open_node() as node:
            out = await pipeline.run(node, range(ITEMS), journal=journal)
        print(len(out), out == [str(i * i) for i in range(ITEMS)])

    trio.run(main)
    """
    )
    .replace("WINDOW", str(WINDOW))
    .replace("ITEMS", str(ITEMS))
)


def run_program(tmp_path: Path, kill_at: int) -> subprocess.CompletedProcess[str]:
    script = tmp_path / "program.py"
    script.write_text(PROGRAM)
    return subprocess.run(
        [
            sys.executable,
            str(script),
            str(tmp_path / "j.sqlite"),
            str(tmp_path / "calls"),
            str(kill_at),
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_a_killed_run_resumes_complete_and_in_order(tmp_path: Path) -> None:
    first = run_program(tmp_path, KILL_AT)
    assert first.returncode == -signal.SIGKILL, first.stderr
    before = (tmp_path / "calls").read_text().split()
    second = run_program(tmp_path, -1)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == [str(ITEMS), "True"]  # complete, in order
    calls = (tmp_path / "calls").read_text().split()
    redone = len(calls) - ITEMS  # every item ran at least once; the rest ran twice
    assert len(set(calls)) == ITEMS
    # What the crash cost: the items in flight (at most a window), those done
    # since the last commit, and those of the commit under way (each at most
    # about a window): bounded by the window, not by the run's length.
    assert 0 < redone <= 3 * WINDOW, (redone, len(before))
    third = run_program(tmp_path, 0)  # a finished journal: nothing runs again
    assert third.returncode == 0, third.stderr
    assert third.stdout.split() == [str(ITEMS), "True"]
    assert len((tmp_path / "calls").read_text().split()) == len(calls)


def double(x: int) -> int:
    return 2 * x


async def test_a_journal_of_another_pipeline_is_refused(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    async with actors.open_node() as node:
        assert await Pipeline(Stage(double), name="one").run(node, range(3), journal=journal) == [
            0,
            2,
            4,
        ]
        with pytest.raises(pipelines.JournalError, match="belongs to another pipeline"):
            await Pipeline(Stage(double), name="two").run(node, range(3), journal=journal)


async def test_a_source_that_is_not_replayable_is_named(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    pipeline = Pipeline(Stage(double), name="replay")
    async with actors.open_node() as node:
        assert await pipeline.run(node, range(5), journal=journal) == [0, 2, 4, 6, 8]
        with pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, [0, 1, 99, 3, 4], journal=journal)
    assert isinstance(caught.value.__cause__, pipelines.JournalError)
    # It names where the source differs (the chunk of items it admitted together).
    assert "0..4" in str(caught.value.__cause__)


async def test_open_resumes_too(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    pipeline = Pipeline(Stage(double, workers=2), name="stream")
    async with actors.open_node() as node:
        async with pipeline.open(node, range(100), journal=journal) as run:
            got = []
            async for x in run:
                got.append(x)
                if len(got) == 30:
                    break  # leave early: what was done stays in the journal
        async with pipeline.open(node, range(100), journal=journal) as run:
            rest = [x async for x in run]
    assert sorted(set(got) | set(rest)) == [2 * i for i in range(100)]
    assert sorted(rest) == [2 * i for i in range(100)]  # a rerun yields every output


REMOTE_PROGRAM = (
    textwrap.dedent(
        """
    import os, signal, sys
    import trio
    from trimq import actors
    from trimq.pipelines import Pipeline, Stage, current_item

    journal, calls, kill_at = sys.argv[1], sys.argv[2], int(sys.argv[3])
    FD = os.open(calls, os.O_WRONLY | os.O_APPEND | os.O_CREAT)  # an int: it travels

    def work(x):
        os.write(FD, f"{current_item().index}\\n".encode())
        if current_item().index == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return x * x

    async def worker(name, task_status):
        async with actors.open_node(name, listen="tcp://127.0.0.1:*", insecure=True,
                                    tags=["worker"]) as node:
            task_status.started(node.endpoints[0])
            await trio.sleep_forever()

    async def main():
        async with trio.open_nursery() as nursery:
            endpoints = [await nursery.start(worker, n) for n in ("w1", "w2")]
            pipeline = Pipeline(Stage(int, name="parse"), Stage(work, workers=4, on="worker"),
                                Stage(str, name="fmt"), name="remote-resume", window=WINDOW)
            async with actors.open_node("hub", insecure=True) as hub:
                for endpoint in endpoints:
                    await hub.connect(endpoint)
                out = await pipeline.run(hub, range(ITEMS), journal=journal)
            print(len(out), out == [str(i * i) for i in range(ITEMS)])
            nursery.cancel_scope.cancel()

    trio.run(main)
    """
    )
    .replace("WINDOW", str(WINDOW))
    .replace("ITEMS", str(ITEMS))
)


def test_a_killed_run_with_a_remote_stage_resumes(tmp_path: Path) -> None:
    script = tmp_path / "remote.py"
    script.write_text(REMOTE_PROGRAM)

    def run(kill_at: int) -> subprocess.CompletedProcess[str]:
        command = [sys.executable, str(script), str(tmp_path / "j"), str(tmp_path / "calls")]
        return subprocess.run(
            [*command, str(kill_at)], capture_output=True, text=True, timeout=120, check=False
        )

    first = run(KILL_AT)
    assert first.returncode == -signal.SIGKILL, first.stderr
    second = run(-1)
    assert second.returncode == 0, second.stderr
    assert second.stdout.split() == [str(ITEMS), "True"]
    calls = (tmp_path / "calls").read_text().split()
    assert len(set(calls)) == ITEMS
    assert 0 < len(calls) - ITEMS <= 3 * WINDOW

"""Pipelines whose middle stage runs on worker nodes on other hosts.

The hub (this process, in the test's namespace) runs the pipeline; the
middle stage's workers are placed on two ``trimq node`` workers (tagged
"worker", CURVE, see test_hosts) on hosts 1 and 2. A worker host killed
(kill -9) or cut off mid-run loses no item and duplicates none; a poison item
fails alone after its attempts.

Stage functions are module-level here. pytest names this module
``netns.test_pipelines`` (tests/ is no package), which the workers, started in
the repository's root, cannot import: ``importable`` puts tests/ on their
path, so the stage functions travel by reference. Without it they should
travel by value, as test_hosts' ``Squarer`` does (the last test).
"""

from __future__ import annotations

import itertools
import os
import signal
from pathlib import Path

import pytest
import trio

from trimq.pipelines import Pipeline, PipelineError, Run, Stage

from .conftest import ROOT, Hosts
from .test_hosts import FAST, TIMEOUT, hub_node, keys, start_worker

ITEMS = 3000
#: Outputs before the worker host is killed or cut off.
AFTER = 1000
POISON = 1234


def inc(n: int) -> int:
    return n + 1


async def square(n: int) -> int:
    # On the workers: a little waiting per item, so the run outlasts the kill.
    await trio.sleep(0.0005)
    return n * n


def square_or_die(n: int) -> int:
    if n == POISON:
        raise ValueError(f"poisoned item {n}")
    return n * n


def three_stages() -> Pipeline:
    return Pipeline(
        Stage(inc, workers=2),
        Stage(square, workers=4, on="worker"),
        Stage(inc, name="last"),
        name="across",
    )


EXPECTED = sorted((i + 1) ** 2 + 1 for i in range(ITEMS))


@pytest.fixture
def importable(monkeypatch: pytest.MonkeyPatch) -> None:
    """Workers started from now on can import this module (see the module docs)."""
    path = [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([*path, str(ROOT / "tests")]))


def middle_nodes(run: Run) -> list[str]:
    """The nodes of the middle stage's workers, sorted."""
    return sorted(node for _, node in run.statistics()[1].workers)


async def middle_on(run: Run, wanted: list[str]) -> None:
    """Return once the middle stage's workers are on ``wanted`` (bounded polling:
    the stage's supervisor moves them as it learns of a lost node)."""
    # The pool's view refreshes on its own schedule: nothing to wait on but time.
    for _ in range(int(TIMEOUT / 0.05)):
        if middle_nodes(run) == sorted(wanted):
            return
        await trio.sleep(0.05)
    raise AssertionError(f"middle stage on {middle_nodes(run)}, not {sorted(wanted)}")


async def test_a_killed_worker_host_loses_no_item_and_repeats_none(
    hosts: Hosts, tmp_path: Path, importable: None
) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    w1 = start_worker(hosts, 1, "w1", tmp_path)
    start_worker(hosts, 2, "w2", tmp_path)
    got: list[int] = []
    after_kill: list[float] = []  # when each output came, from the kill on
    async with hub_node(all_keys) as (hub, _):
        for host, name in ((1, "w1"), (2, "w2")):
            await hub.connect(hosts.endpoint(host), key=all_keys[name][0])
        with trio.fail_after(TIMEOUT * 2):
            async with three_stages().open(hub, range(ITEMS), progress=False) as run:
                await middle_on(run, ["w1", "w1", "w2", "w2"])
                async for out in run:
                    got.append(out)
                    if after_kill:
                        after_kill.append(trio.current_time())
                    if len(got) == AFTER:
                        w1.send_signal(signal.SIGKILL)  # with batches in flight on w1
                        after_kill.append(trio.current_time())
                assert w1.wait(timeout=10) == -signal.SIGKILL
                await middle_on(run, ["w2"] * 4)
                stats = run.statistics()
                failures = run.failures
    assert sorted(got) == EXPECTED  # every output, each exactly once
    assert failures == []
    assert [s.completed for s in stats] == [ITEMS] * 3
    assert [s.failed for s in stats] == [0, 0, 0]
    assert stats[1].retried > 0  # the kill did hit items in flight on w1
    assert [s.in_flight + s.queued for s in stats] == [0, 0, 0]
    assert {node for _, node in stats[1].workers} == {"w2"}
    assert len(after_kill) > 1  # outputs came after the kill
    gap = max(b - a for a, b in itertools.pairwise(after_kill))
    # A bound, not a speed test: w1's items wait at most for w1 to be declared lost.
    assert gap < FAST["timeout"] + 2.0, gap


async def test_a_cut_link_loses_no_item_and_the_node_rejoins(
    hosts: Hosts, tmp_path: Path, importable: None
) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    start_worker(hosts, 1, "w1", tmp_path)
    start_worker(hosts, 2, "w2", tmp_path)
    got: list[int] = []
    async with hub_node(all_keys) as (hub, _):
        for host, name in ((1, "w1"), (2, "w2")):
            await hub.connect(hosts.endpoint(host), key=all_keys[name][0])
        with trio.fail_after(TIMEOUT * 2):
            async with three_stages().open(hub, range(ITEMS), progress=False) as run:
                await middle_on(run, ["w1", "w1", "w2", "w2"])
                async for out in run:
                    got.append(out)
                    if len(got) == AFTER:
                        hosts.cut(1)  # w1 neither sends nor answers from now on
                await middle_on(run, ["w2"] * 4)
                stats = run.statistics()
                failures = run.failures
                hosts.restore(1)
                while "w1" not in [peer.name for peer in hub.peers]:
                    await hub.membership_changed()
        # w1 works again: a stage placed on it alone.
        with trio.fail_after(TIMEOUT):
            again = await Pipeline(Stage(square, on="w1"), name="back").run(
                hub, range(10), progress=False
            )
    assert sorted(got) == EXPECTED  # every output, each exactly once
    assert failures == []
    assert [s.completed for s in stats] == [ITEMS] * 3
    assert stats[1].retried > 0  # the cut did hit items in flight on w1
    assert {node for _, node in stats[1].workers} == {"w2"}
    assert again == [n * n for n in range(10)]


async def test_a_poison_item_fails_alone_after_its_attempts(
    hosts: Hosts, tmp_path: Path, importable: None
) -> None:
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    start_worker(hosts, 1, "w1", tmp_path)
    start_worker(hosts, 2, "w2", tmp_path)
    async with hub_node(all_keys) as (hub, _):
        for host, name in ((1, "w1"), (2, "w2")):
            await hub.connect(hosts.endpoint(host), key=all_keys[name][0])
        pipeline = Pipeline(
            Stage(inc, workers=2),
            Stage(square_or_die, workers=4, on="worker", max_attempts=3),
            Stage(inc, name="last"),
            name="poison",
        )
        with trio.fail_after(TIMEOUT), pytest.raises(PipelineError) as caught:
            await pipeline.run(hub, range(ITEMS), progress=False)
    (failure,) = caught.value.failures
    assert failure.index == POISON - 1  # inc made it the poison
    assert failure.stage == "square_or_die"
    assert failure.item == POISON
    assert failure.attempts == 3
    assert isinstance(failure.error, ValueError)
    assert f"poisoned item {POISON}" in str(failure.error)
    assert caught.value.results == [(i + 1) ** 2 + 1 for i in range(ITEMS) if i != POISON - 1]


async def test_a_stage_function_the_workers_cannot_import_travels_by_value(
    hosts: Hosts, tmp_path: Path
) -> None:
    # No ``importable``: w1 cannot import this module, as it cannot import
    # test_hosts' Squarer, which reaches it by value all the same.
    all_keys = keys(tmp_path, "hub", "w1", "w2")
    start_worker(hosts, 1, "w1", tmp_path)
    async with hub_node(all_keys) as (hub, _):
        await hub.connect(hosts.endpoint(1), key=all_keys["w1"][0])
        pipeline = Pipeline(Stage(square, workers=2, on="worker"), name="by-value")
        with trio.fail_after(TIMEOUT):
            outputs = await pipeline.run(hub, range(100), progress=False)
    assert outputs == [n * n for n in range(100)]

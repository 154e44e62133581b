"""What a run shows: statistics on the event bus, a progress table, current_item for
idempotent sinks, and side effects at least once while outputs are exactly once."""

from __future__ import annotations

import collections

import pytest
import trio

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage, current_item

TIMEOUT = 20
WRITES: collections.Counter[tuple[str, int]] = collections.Counter()
TRIES: collections.Counter[int] = collections.Counter()


def double(x: int) -> int:
    return 2 * x


def sink(x: int) -> int:
    """Writes each item keyed by (run, index): idempotent whatever the retries."""
    item = current_item()
    WRITES[(item.run, item.index)] += 1
    TRIES[item.index] += 1
    if item.index % 10 == 0 and item.attempt == 1:
        raise RuntimeError("fails the first attempt of every tenth item")
    return x


async def test_statistics_are_published_on_the_event_bus() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double, workers=2), name="watched")
        async with node.events("trimq.pipeline.watched") as events:
            with trio.fail_after(TIMEOUT):
                async with pipeline.open(node, range(100)) as run:
                    got = [x async for x in run]
                topic, published = await events.receive()
    assert topic == "trimq.pipeline.watched"
    assert published["run"] == run.id
    (stage,) = published["stages"]
    assert stage["name"] == "double"
    assert stage["completed"] == 100 == len(got)
    assert len(stage["workers"]) == 2


async def test_a_progress_table_on_request(capfd: pytest.CaptureFixture[str]) -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double), name="shown")
        with trio.fail_after(TIMEOUT):
            assert await pipeline.run(node, range(10), progress=True) == [2 * i for i in range(10)]
    err = capfd.readouterr().err
    assert "pipeline shown" in err
    assert "10 of 10 items done" in err  # the source has a length: a total
    assert "double" in err


async def test_side_effects_are_at_least_once_and_outputs_exactly_once() -> None:
    WRITES.clear()
    TRIES.clear()
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double, workers=2), Stage(sink, workers=3), name="idem")
        with trio.fail_after(TIMEOUT):
            out = await pipeline.run(node, range(100))
    assert out == [2 * i for i in range(100)]  # exactly once, in order
    assert {TRIES[i] for i in range(0, 100, 10)} == {2}  # those ran twice...
    assert sum(TRIES.values()) == 110
    assert len({r for r, _ in WRITES}) == 1  # ... under one run id, keyed by index
    assert len(WRITES) == 100


async def test_the_run_id_names_each_run() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double), name="ids")
        async with pipeline.open(node, range(3)) as first:
            [x async for x in first]
        async with pipeline.open(node, range(3)) as second:
            [x async for x in second]
    assert first.id != second.id
    assert isinstance(pipelines.ItemInfo("r", "s", 0, (), 1), pipelines.ItemInfo)

"""A pipeline on one node: outputs in source order, generators, batches, actors, streaming."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage

TIMEOUT = 20


def double(x: int) -> int:
    return 2 * x


async def increment(x: int) -> int:
    await trio.lowlevel.checkpoint()
    return x + 1


def split(x: int) -> Any:
    # 0, 1 or 2 outputs: a filter and a flat-map at once.
    for i in range(x % 3):
        yield (x, i)


async def asplit(x: int) -> Any:
    for i in range(x % 3):
        await trio.lowlevel.checkpoint()
        yield (x, i)


def label(xs: list[Any]) -> list[str]:
    return [f"<{x}>" for x in xs]


class Counting(actors.Actor):
    def on_start(self) -> None:
        self.seen = 0

    def process(self, item: Any) -> Any:
        self.seen += 1
        return item


async def test_outputs_come_in_source_order() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double, workers=3), Stage(increment, workers=2), name="p")
        with trio.fail_after(TIMEOUT):
            assert await pipeline.run(node, range(1000)) == [2 * i + 1 for i in range(1000)]


@pytest.mark.parametrize("gen", [split, asplit], ids=["sync", "async"])
async def test_generator_outputs_stay_together_and_in_order(gen: Any) -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(gen, workers=2), Stage(double, workers=2), name="g")
        with trio.fail_after(TIMEOUT):
            out = await pipeline.run(node, range(30))
    assert out == [2 * (x, i) for x in range(30) for i in range(x % 3)]


async def test_a_batch_stage_gets_lists_and_an_actor_stage_keeps_its_state() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(Counting, workers=1), Stage(label, batch=7), name="b")
        with trio.fail_after(TIMEOUT):
            assert await pipeline.run(node, range(50)) == [f"<{i}>" for i in range(50)]


async def test_an_async_source_and_streaming_in_completion_order() -> None:
    async def source() -> AsyncIterator[int]:
        for i in range(200):
            await trio.lowlevel.checkpoint()
            yield i

    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(double, workers=4), name="s")
        with trio.fail_after(TIMEOUT):
            async with pipeline.open(node, source()) as run:
                got = [x async for x in run]
            (stats,) = run.statistics()
    assert sorted(got) == [2 * i for i in range(200)]
    assert (stats.received, stats.completed, stats.failed) == (200, 200, 0)
    assert len(stats.workers) == 4


def test_bad_stages_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="workers must be an int of at least 1"):
        Stage(double, workers=0)
    with pytest.raises(ValueError, match="max_attempts"):
        Stage(double, max_attempts=0)
    with pytest.raises(ValueError, match="batch must be"):
        Stage(double, batch=0)
    with pytest.raises(ValueError, match="no process"):
        Stage(actors.Actor)
    with pytest.raises(TypeError, match="runs a function or an Actor class"):
        Stage(3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one Stage"):
        Pipeline()
    with pytest.raises(ValueError, match="names must differ"):
        Pipeline(Stage(double), Stage(double))
    assert Stage(double).name == "double"
    assert Stage(Counting).name == "Counting"
    assert pipelines.Stage(double, name="d").name == "d"

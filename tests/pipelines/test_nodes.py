"""Stages on other nodes: items of a lost node go out again, nothing lost or duplicated;
bad input for a remote stage is a Failure; a stage that cannot travel is refused."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage

TIMEOUT = 30
FAST: dict[str, Any] = {"heartbeat": 0.1, "timeout": 0.5}


def square(x: int) -> int:
    return x * x


def inc(x: int) -> int:
    return x + 1


async def worker_node(name: str, *, task_status: Any) -> None:
    """A worker node (tagged "worker") until its scope is cancelled: then it is
    gone without a word, as a killed process is (its peers see it lost)."""
    with trio.CancelScope() as scope:
        async with actors.open_node(
            name, listen="tcp://127.0.0.1:*", insecure=True, tags=["worker"], **FAST
        ) as node:
            task_status.started((scope, node.endpoints[0]))
            await trio.sleep_forever()


async def test_a_lost_worker_nodes_items_go_out_again_exactly_once() -> None:
    async with trio.open_nursery() as nursery:
        w1, e1 = await nursery.start(worker_node, "w1")
        _, e2 = await nursery.start(worker_node, "w2")
        async with actors.open_node("hub", insecure=True, **FAST) as hub:
            await hub.connect(e1)
            await hub.connect(e2)
            pipeline = Pipeline(
                Stage(inc), Stage(square, workers=4, on="worker"), Stage(inc, name="last"), name="r"
            )
            got: list[int] = []
            with trio.fail_after(TIMEOUT):
                async with pipeline.open(hub, range(5000)) as run:
                    async for out in run:
                        got.append(out)
                        if len(got) == 1000:
                            w1.cancel()  # a worker node dies with items in flight
                    stats = run.statistics()
        nursery.cancel_scope.cancel()
    assert sorted(got) == sorted((i + 1) ** 2 + 1 for i in range(5000))  # each exactly once
    assert run.failures == []
    middle = stats[1]
    assert middle.completed == 5000
    assert {node for _, node in middle.workers} == {"w2"}  # its workers moved


async def test_an_item_that_cannot_travel_is_a_failure_naming_why() -> None:
    async with trio.open_nursery() as nursery:
        _, endpoint = await nursery.start(worker_node, "w1")
        async with actors.open_node("hub", insecure=True, **FAST) as hub:
            await hub.connect(endpoint)
            pipeline = Pipeline(Stage(lambda x: x, on="worker", name="ship"), name="c")
            items: list[Any] = [1, threading.Lock(), 3]
            with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
                await pipeline.run(hub, items)
        nursery.cancel_scope.cancel()
    (failure,) = caught.value.failures
    assert failure.index == 1
    assert isinstance(failure.error, actors.CodecError)
    assert "lock" in str(failure.error)
    assert caught.value.results == [1, 3]


async def test_a_stage_that_cannot_travel_is_refused_at_run() -> None:
    lock = threading.Lock()
    pipeline = Pipeline(Stage(lambda x: (lock, x), on="worker", name="locked"), name="n")
    async with actors.open_node() as node:
        with pytest.raises(
            ValueError, match=r"stage 'locked' runs on other nodes .* cannot be sent"
        ):
            await pipeline.run(node, [1])


async def test_drain_stops_taking_from_an_endless_source() -> None:
    async def endless() -> AsyncIterator[int]:
        i = 0
        while True:
            await trio.lowlevel.checkpoint()
            yield i
            i += 1

    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(inc, workers=2), name="d", window=64)
        got: list[int] = []
        with trio.fail_after(TIMEOUT):
            async with pipeline.open(node, endless()) as run:
                async for out in run:
                    got.append(out)
                    # The window bounds what is in the pipeline at any time.
                    (stats,) = run.statistics()
                    assert stats.in_flight + stats.queued <= 64
                    if len(got) == 500:
                        await run.drain()
                rest = stats.received
    assert sorted(got) == list(range(1, len(got) + 1))  # every admitted item, once
    assert len(got) == rest


async def test_a_slow_reader_slows_the_source() -> None:
    """Outputs not yet read count against the window: a reader that stops reading
    stops the source, so memory stays bounded whatever it does."""
    pulled = 0

    async def endless() -> AsyncIterator[int]:
        nonlocal pulled
        while True:
            await trio.lowlevel.checkpoint()
            pulled += 1
            yield pulled

    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(inc, workers=2), name="slow-reader", window=100)
        with trio.fail_after(TIMEOUT):
            async with pipeline.open(node, endless()) as run:
                await run.__anext__()
                await trio.testing.wait_all_tasks_blocked()  # nothing moves any more
                assert pulled <= 100 + 1
                taken = pulled
                for _ in range(50):
                    await run.__anext__()
                await trio.testing.wait_all_tasks_blocked()
                assert taken < pulled <= 100 + 51  # reading made room, and only so much


async def test_a_source_that_raises_ends_the_run_with_a_pipeline_error() -> None:
    def broken() -> Any:
        yield 1
        raise OSError("the disk went away")

    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(inc), name="broken")
        with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, broken())
    assert "the source raised OSError: the disk went away" in str(caught.value)
    assert isinstance(caught.value.__cause__, OSError)


def test_a_bare_function_is_not_a_stage() -> None:
    with pytest.raises(TypeError, match=r"made of Stage objects.*wrap it"):
        Pipeline(inc)  # type: ignore[arg-type]

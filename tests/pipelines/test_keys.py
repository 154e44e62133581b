"""Stage(key=): items of one key one at a time, in source order, across retries,
crashes and lost nodes; other keys are not held up."""

from __future__ import annotations

import collections
from typing import Any

import pytest
import trio

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage, current_item

from .test_nodes import FAST, worker_node

TIMEOUT = 30
ORDER: list[tuple[int, int]] = []  # (key, source index), as the keyed stage took them
ACTIVE: collections.Counter[int] = collections.Counter()
OVERLAPS: list[int] = []
TRIES: collections.Counter[int] = collections.Counter()


def key_of(x: int) -> int:
    return x % 5


def shuffle(x: int) -> int:
    return x  # several workers: their items reach the next stage in any order


async def keyed(x: int) -> int:
    k = key_of(x)
    ACTIVE[k] += 1
    if ACTIVE[k] > 1:
        OVERLAPS.append(x)
    ORDER.append((k, current_item().index))
    TRIES[x] += 1
    try:
        await trio.lowlevel.checkpoint()  # let other items interleave
        if x == 7 and TRIES[x] == 1:
            raise RuntimeError("item 7 fails once")
        return x
    finally:
        ACTIVE[k] -= 1


class KeyedCrash(actors.Actor):
    def process(self, x: int) -> int:
        ORDER.append((key_of(x), current_item().index))
        TRIES[x] += 1
        if x == 12 and TRIES[x] == 1:
            raise RuntimeError("crash on 12")
        return x


def poison_key_2(x: int) -> int:
    ORDER.append((key_of(x), current_item().index))
    if x == 2:
        raise ValueError("key 2's first item is poison")
    return x


@pytest.fixture(autouse=True)
def _clear() -> None:
    ORDER.clear()
    ACTIVE.clear()
    OVERLAPS.clear()
    TRIES.clear()


def assert_in_order_per_key() -> None:
    seen: dict[int, list[int]] = collections.defaultdict(list)
    for k, index in ORDER:
        seen[k].append(index)
    for k, indexes in seen.items():
        firsts = list(dict.fromkeys(indexes))  # retries repeat an index in place
        assert firsts == sorted(firsts), (k, indexes)
        assert indexes == sorted(indexes), (k, indexes)  # a retry comes before the next item


async def test_one_at_a_time_in_source_order_across_a_retry() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(
            Stage(shuffle, workers=3), Stage(keyed, workers=4, key=key_of), name="k"
        )
        with trio.fail_after(TIMEOUT):
            assert await pipeline.run(node, range(200)) == list(range(200))
    assert OVERLAPS == []
    assert TRIES[7] == 2
    assert_in_order_per_key()


async def test_in_order_across_a_crashing_actor_stage() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(KeyedCrash, workers=3, key=key_of), name="kc")
        with trio.fail_after(TIMEOUT):
            assert await pipeline.run(node, range(60)) == list(range(60))
    assert TRIES[12] == 2
    assert_in_order_per_key()


async def test_a_failing_key_holds_up_only_its_own_items() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(poison_key_2, workers=2, key=key_of, max_attempts=2), name="kp")
        with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, range(50))
    (failure,) = caught.value.failures
    assert failure.index == 2
    assert caught.value.results == [i for i in range(50) if i != 2]  # key 2's later items too
    assert_in_order_per_key()


async def test_in_order_across_a_lost_node() -> None:
    async with trio.open_nursery() as nursery:
        w1, e1 = await nursery.start(worker_node, "w1")
        _, e2 = await nursery.start(worker_node, "w2")
        async with actors.open_node("hub", insecure=True, **FAST) as hub:
            await hub.connect(e1)
            await hub.connect(e2)
            pipeline = Pipeline(
                Stage(shuffle, workers=2),
                Stage(keyed, workers=4, on="worker", key=key_of),
                name="kn",
            )
            got: list[int] = []
            with trio.fail_after(TIMEOUT):
                async with pipeline.open(hub, range(2000)) as run:
                    async for out in run:
                        got.append(out)
                        if len(got) == 500:
                            w1.cancel()
        nursery.cancel_scope.cancel()
    assert sorted(got) == list(range(2000))
    assert OVERLAPS == []
    assert_in_order_per_key()


def test_key_after_a_generator_is_refused() -> None:
    def gen(x: int) -> Any:
        yield x

    with pytest.raises(ValueError, match="generator stage comes before it"):
        Pipeline(Stage(gen), Stage(keyed, key=key_of))
    with pytest.raises(TypeError, match="key must be a function"):
        Stage(keyed, key=3)  # type: ignore[arg-type]

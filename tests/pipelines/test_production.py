"""Rate limits, the stall alarm and live resize: Stage(rate=), stall_after, set_rate, resize."""

from __future__ import annotations

from typing import Any

import pytest
import trio

from trimq import actors
from trimq.pipelines import Pipeline, Stage

TIMES: list[float] = []


def stamp(x: int) -> int:
    TIMES.append(trio.current_time())
    return x


async def slow(x: int) -> int:
    await trio.sleep(0.01)
    return x


async def hang_on_3(x: int) -> int:
    if x == 3:
        await trio.sleep(1000)
    return x


async def test_a_rate_limit_holds_across_the_pool(autojump_clock: Any) -> None:
    TIMES.clear()
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(stamp, workers=4, rate=20), name="r")
        start = trio.current_time()
        assert await pipeline.run(node, range(100)) == list(range(100))
    # 20 per second, a second's worth of burst: 100 items take about 4 s more.
    assert 3.9 <= max(TIMES) - start <= 5.5
    for t in TIMES:
        # never more than the bucket allows: burst + rate * elapsed
        assert sum(1 for u in TIMES if u <= t) <= 20 + 20 * (t - start) + 1


async def test_the_rate_changes_on_a_live_run(autojump_clock: Any) -> None:
    TIMES.clear()
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(stamp, workers=2, rate=10), name="s")
        async with pipeline.open(node, range(60)) as run:
            got = []
            async for x in run:
                got.append(x)
                if len(got) == 20:
                    changed = trio.current_time()
                    run.set_rate("stamp", 100)
        with pytest.raises(ValueError, match="positive"):
            run.set_rate("stamp", 0)
        with pytest.raises(KeyError, match="no stage 'nope'"):
            run.set_rate("nope", 1)
    assert sorted(got) == list(range(60))
    after = [t for t in TIMES if t > changed]
    assert max(after) - changed < 1.5  # 40 items at 100/s, not 4 s at 10/s


async def test_a_stage_that_completes_nothing_raises_the_stall_alarm(
    autojump_clock: Any, caplog: pytest.LogCaptureFixture
) -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(
            Stage(hang_on_3, workers=1, max_attempts=1), name="stuck", stall_after=30
        )
        async with node.events("trimq.pipeline.stuck") as events:
            async with pipeline.open(node, [3]) as run:
                with trio.move_on_after(45):
                    async for _ in run:
                        pass
                (stats,) = run.statistics()
            published = None
            while published is None or not published["stages"][0]["stalls"]:
                _, published = await events.receive()
    assert stats.stalls == 1
    assert "stage 'hang_on_3' stalled" in caplog.text
    assert "oldest item 0 (attempt 1" in caplog.text
    assert published["stages"][0]["stalls"] == 1


async def test_resize_up_and_down_while_items_flow() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(slow, workers=2), name="z")
        got: list[int] = []
        with trio.fail_after(30):
            async with pipeline.open(node, range(600)) as run:
                async for x in run:
                    got.append(x)
                    if len(got) == 100:
                        await run.resize("slow", workers=5)
                        assert len(run.statistics()[0].workers) == 5
                    if len(got) == 300:
                        await run.resize("slow", workers=1)
                        assert len(run.statistics()[0].workers) == 1
                with pytest.raises(ValueError, match="at least 1 worker"):
                    await run.resize("slow", workers=0)
    assert sorted(got) == list(range(600))  # every output exactly once
    assert run.failures == []


DEAD: list[Any] = []


def fails_on_odd(x: int) -> int:
    if x % 2:
        raise ValueError(f"odd {x}")
    return x


def bury(failure: Any) -> None:
    DEAD.append(failure)


async def test_dead_letters_go_to_their_sink_and_the_run_does_not_raise() -> None:
    DEAD.clear()
    async with actors.open_node() as node:
        pipeline = Pipeline(
            Stage(fails_on_odd, workers=2, max_attempts=2), name="d", dead_letter=bury
        )
        with trio.fail_after(20):
            assert await pipeline.run(node, range(10)) == [0, 2, 4, 6, 8]
    assert sorted(f.index for f in DEAD) == [1, 3, 5, 7, 9]
    assert all(isinstance(f.error, ValueError) and f.attempts == 2 for f in DEAD)
    assert all(f.stage == "fails_on_odd" for f in DEAD)

"""Failures: retries with back-off on other workers, Failure and PipelineError, timeouts,
crashing Actor stages, a pool that gives up, wrong batch lengths, current_item."""

from __future__ import annotations

import collections
import itertools
from typing import Any

import pytest
import trio

from trimq import actors, pipelines
from trimq.pipelines import Pipeline, Stage, current_item

TIMEOUT = 20
ATTEMPTS: collections.Counter[int] = collections.Counter()
SEEN: list[tuple[str, int, int]] = []
STARTS: list[str] = []


def poison_at_7(x: int) -> int:
    SEEN.append((current_item().stage, current_item().index, current_item().attempt))
    if x == 7:
        raise KeyError(f"poison {x}")
    return x


def flaky_at_3(x: int) -> int:
    ATTEMPTS[x] += 1
    if x == 3 and ATTEMPTS[x] == 1:
        raise RuntimeError("first time only")
    return x * 10


class Crashy(actors.Actor):
    """Crashes on item 5 the first time; counts what its instance saw."""

    def on_start(self) -> None:
        self.seen = 0
        STARTS.append(self.ref.name)

    def process(self, x: int) -> tuple[int, int, str]:
        self.seen += 1
        ATTEMPTS[x] += 1
        if x == 5 and ATTEMPTS[x] == 1:
            raise RuntimeError("crash on 5")
        return x, self.seen, self.ref.name


class AlwaysCrashes(actors.Actor):
    def process(self, x: int) -> int:
        raise RuntimeError(f"always {x}")


def wrong_length(xs: list[int]) -> list[int]:
    return xs[:-1]


@pytest.fixture(autouse=True)
def _clear() -> None:
    ATTEMPTS.clear()
    SEEN.clear()
    STARTS.clear()


async def test_a_poison_item_fails_alone_after_its_attempts() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(poison_at_7, workers=3, max_attempts=3), name="p")
        with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, range(20))
    error = caught.value
    assert error.results == [i for i in range(20) if i != 7]
    (failure,) = error.failures
    assert (failure.item, failure.stage, failure.attempts, failure.index) == (
        7,
        "poison_at_7",
        3,
        7,
    )
    assert isinstance(failure.error, KeyError)
    assert "item 7 at stage 'poison_at_7'" in str(error)
    assert [a for s, i, a in SEEN if i == 7] == [1, 2, 3]  # each attempt knew its number


async def test_an_item_that_fails_once_then_succeeds() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(flaky_at_3, workers=2), name="f")
        with trio.fail_after(TIMEOUT):
            async with pipeline.open(node, range(10)) as run:
                got = sorted([x async for x in run])
                (stats,) = run.statistics()
    assert got == [i * 10 for i in range(10)]
    assert (stats.completed, stats.retried, stats.failed) == (10, 1, 0)
    assert run.failures == []


async def test_an_actor_stage_that_raises_restarts_fresh_and_the_item_goes_again() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(Crashy, workers=2), name="c")
        with trio.fail_after(TIMEOUT):
            out = await pipeline.run(node, range(10))
    assert [x for x, _, _ in out] == list(range(10))
    assert ATTEMPTS[5] == 2
    # Two workers started, and the one that raised started again, fresh.
    assert len(STARTS) == 3
    assert len(set(STARTS)) == 2


async def test_a_pool_that_crashes_past_its_intensity_fails_the_run_clearly() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(AlwaysCrashes, workers=1, max_attempts=100), name="x")
        with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, range(50))
    message = str(caught.value)
    assert "stage 'AlwaysCrashes'" in message
    assert "supervisor" in message
    assert "RuntimeError: always" in message  # its last crashes


async def test_a_batch_stage_returning_the_wrong_length_fails_its_items() -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(wrong_length, batch=5, max_attempts=1), name="w")
        with trio.fail_after(TIMEOUT), pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, range(5))
    assert len(caught.value.failures) == 5
    assert "returned 4 outputs for 5 items" in str(caught.value.failures[0].error)


async def never_for_3(x: int) -> int:
    if x == 3:
        await trio.sleep_forever()
    return x


async def test_an_attempt_that_takes_longer_than_timeout_fails(autojump_clock: Any) -> None:
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(never_for_3, timeout=2, max_attempts=2), name="t")
        with pytest.raises(pipelines.PipelineError) as caught:
            await pipeline.run(node, range(6))
    (failure,) = caught.value.failures
    assert failure.index == 3
    assert failure.attempts == 2
    assert isinstance(failure.error, TimeoutError | trio.TooSlowError)
    assert caught.value.results == [0, 1, 2, 4, 5]


def test_current_item_outside_a_stage_says_so() -> None:
    with pytest.raises(LookupError, match="only known inside a pipeline stage"):
        current_item()


TIMES: list[float] = []


def fails_three_times(x: int) -> int:
    if x == 0:
        TIMES.append(trio.current_time())
        if len(TIMES) <= 3:
            raise RuntimeError(f"attempt {len(TIMES)}")
    return x


async def test_retries_back_off_exponentially_with_jitter(autojump_clock: Any) -> None:
    """Under the autojump clock the waits between attempts are the back-off itself:
    0.05 s * 2**(n-1) before attempt n+1, times a jitter in [0.5, 1.5)."""
    TIMES.clear()
    async with actors.open_node() as node:
        pipeline = Pipeline(Stage(fails_three_times, workers=2, max_attempts=4), name="b")
        assert await pipeline.run(node, range(3)) == [0, 1, 2]
    waits = [later - earlier for earlier, later in itertools.pairwise(TIMES)]
    assert len(waits) == 3
    for n, wait in enumerate(waits, 1):
        base = 0.05 * 2 ** (n - 1)
        assert 0.5 * base <= wait < 1.5 * base + 0.01, (n, wait)

"""Actor timers: send_after and send_every, on trio's autojump clock."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trimq import actors

from .conftest import actor_of


class Ticker(actors.Actor):
    def __init__(self, every: float | None = None) -> None:
        self.every = every
        self.ticks: list[tuple[str, float]] = []
        self.timer: actors.Timer | None = None

    def on_start(self) -> None:
        if self.every is not None:
            self.timer = self.send_every(self.every, "tick", "periodic")

    def tick(self, label: str) -> None:
        self.ticks.append((label, trio.current_time()))

    def schedule(self, delay: float, label: str) -> None:
        self.send_after(delay, "tick", label)

    def stop_ticking(self) -> None:
        assert self.timer is not None
        self.timer.cancel()

    def seen(self) -> list[tuple[str, float]]:
        return list(self.ticks)


async def test_send_after_delivers_once_after_the_delay(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Ticker)
        start = trio.current_time()
        await ref.ask("schedule", 2.5, "later")
        await ref.ask("schedule", 1.0, "sooner")
        await trio.sleep(10)
        seen = await ref.ask("seen")
        assert [label for label, _ in seen] == ["sooner", "later"]
        assert [t - start for _, t in seen] == pytest.approx([1.0, 2.5], abs=0.01)


async def test_send_every_keeps_a_fixed_rate_until_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with actors.open_node() as node:
        start = trio.current_time()
        ref = await node.spawn(Ticker, 0.5)
        await trio.sleep(2.25)
        await ref.ask("stop_ticking")
        await trio.sleep(5)
        seen = await ref.ask("seen")
        assert [t - start for _, t in seen] == pytest.approx([0.5, 1.0, 1.5, 2.0], abs=0.01)
        assert actor_of(node, ref, Ticker).timer is not None
        assert actor_of(node, ref, Ticker).timer.cancelled  # type: ignore[union-attr]


async def test_timers_end_with_their_actor(autojump_clock: trio.testing.MockClock) -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Ticker, 0.1)
        await trio.sleep(1)
        ticker = actor_of(node, ref, Ticker)
        await ref.stop()
        count = len(ticker.ticks)
        assert count >= 9
        await trio.sleep(5)  # nothing ticks into a stopped actor, nothing raises
        assert len(ticker.ticks) == count


async def test_timer_arguments_are_checked_at_once() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Ticker)
        ticker = actor_of(node, ref, Ticker)
        with pytest.raises(AttributeError, match="no handler 'nope'"):
            ticker.send_after(1, "nope")
        with pytest.raises(ValueError, match="delay must be >= 0"):
            ticker.send_after(-1, "tick", "x")
        with pytest.raises(ValueError, match="interval > 0"):
            ticker.send_every(0, "tick", "x")

"""The local actor runtime: spawn, tell/ask/proxy, errors, timeouts, lifecycle, refs."""

from __future__ import annotations

import pickle
import traceback
from typing import Any

import pytest
import trio
import trio.testing

from trimq import actors

from .conftest import actor_of

TIMEOUT = 5


class Counter(actors.Actor):
    def __init__(self, start: int = 0, log: list[str] | None = None) -> None:
        self.count = start
        self.log = log if log is not None else []

    def on_start(self) -> None:
        self.log.append(f"start {self.ref.name}")

    async def on_stop(self) -> None:
        await trio.lowlevel.checkpoint()
        self.log.append(f"stop {self.ref.name}")

    def add(self, n: int = 1) -> int:
        self.count += n
        return self.count

    async def slow_get(self) -> int:
        await trio.lowlevel.checkpoint()
        return self.count

    def fail(self, message: str) -> None:
        raise KeyError(message)

    def _private(self) -> None:
        raise AssertionError("never called")


class Gate(actors.Actor):
    """Handlers that wait on events the test controls."""

    def __init__(self) -> None:
        self.open = trio.Event()
        self.started = trio.Event()
        self.cancelled = False
        self.handled: list[int] = []

    async def wait(self, n: int = 0) -> int:
        self.started.set()
        try:
            await self.open.wait()
        except trio.Cancelled:
            self.cancelled = True
            raise
        self.handled.append(n)
        return n

    def release(self) -> None:
        self.open.set()

    def note(self, n: int) -> None:
        self.handled.append(n)

    def seen(self) -> list[int]:
        return list(self.handled)


class Relay(actors.Actor):
    """Asks another actor, whose ref came inside a message."""

    async def forward(self, target: actors.ActorRef, n: int) -> Any:
        return await target.ask("add", n)


async def test_tell_ask_and_proxy() -> None:
    async with actors.open_node(name="n1") as node:
        ref = await node.spawn(Counter, 10)
        assert ref == actors.ActorRef("n1", "Counter-1")
        with trio.fail_after(TIMEOUT):
            await ref.tell("add", 1)
            assert await ref.ask("add", 2) == 13
            assert await ref.proxy.add(n=3) == 16
            assert await ref.ask("slow_get") == 16


async def test_messages_are_handled_one_at_a_time_in_order() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Gate)
        with trio.fail_after(TIMEOUT):
            for n in range(200):
                await ref.tell("note", n)
            assert await ref.ask("seen") == list(range(200))


async def test_a_handler_error_reaches_the_asker_and_crashes_the_actor() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Counter)
        other = await node.spawn(Counter)
        with trio.fail_after(TIMEOUT), pytest.raises(KeyError, match="boom") as info:
            await ref.ask("fail", "boom")
        assert any("raised by actor 'Counter-1' handling fail()" in n for n in info.value.__notes__)
        frames = [f.f_code.co_name for f, _ in traceback.walk_tb(info.value.__traceback__)]
        assert "fail" in frames  # the handler's own frame is kept
        # Like an OTP process, the crashed actor is gone; the node and others are not.
        with pytest.raises(actors.ActorNotFoundError, match="Counter-1"):
            await ref.ask("add")
        assert await node.lookup("Counter-1") is None
        with trio.fail_after(TIMEOUT):
            assert await other.ask("add") == 1


async def test_messages_queued_behind_a_crash_fail_clearly() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Gate)
        results: list[object] = []

        async def ask(method: str, *args: Any) -> None:
            try:
                results.append(await ref.ask(method, *args))
            except Exception as exc:
                results.append(exc)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask, "wait", 1)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(ask, "seen")
            await trio.testing.wait_all_tasks_blocked()
            await ref.kill()
        assert all(isinstance(r, actors.ActorStoppedError) for r in results), results
        assert len(results) == 2


async def test_ask_timeout_cancels_the_handler_and_the_actor_goes_on() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Gate)
        with trio.fail_after(TIMEOUT), pytest.raises(TimeoutError, match="did not answer wait"):
            await ref.ask("wait", 1, timeout=0.05)
        with trio.fail_after(TIMEOUT):
            assert await ref.ask("seen") == []
        gate = actor_of(node, ref)
        assert gate.cancelled


async def test_a_timed_out_ask_that_never_started_never_runs() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Gate)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ref.ask, "wait", 1)
            await trio.testing.wait_all_tasks_blocked()
            with pytest.raises(TimeoutError):
                await ref.ask("note", 2, timeout=0.01)  # queued behind the blocked handler
            await ref.tell("release")  # queued too; runs after wait() ends
            actor_of(node, ref).open.set()
        with trio.fail_after(TIMEOUT):
            assert await ref.ask("seen") == [1]


async def test_unknown_and_private_handlers_are_refused_before_sending() -> None:
    async with actors.open_node() as node:
        ref = await node.spawn(Counter)
        for method in ("nope", "_private", "on_start", "on_stop"):
            with pytest.raises(AttributeError, match=f"no handler '{method}'"):
                await ref.tell(method)
        with pytest.raises(AttributeError, match="nope"):
            await ref.proxy.nope()
        with pytest.raises(AttributeError):
            ref.proxy._private  # noqa: B018
        with trio.fail_after(TIMEOUT):
            assert await ref.ask("add") == 1  # nothing reached the actor


async def test_names_lookup_and_listing() -> None:
    async with actors.open_node(name="reg") as node:
        a = await node.spawn(Counter, name="counter")
        b = await node.spawn(Counter)
        assert await node.lookup("counter") == a
        assert await node.lookup("missing") is None
        assert node.actors == [a, b]
        with pytest.raises(ValueError, match="already runs"):
            await node.spawn(Counter, name="counter")


async def test_refs_are_plain_values_and_travel_in_messages() -> None:
    async with actors.open_node(name="values") as node:
        target = await node.spawn(Counter, 5, name="target")
        relay = await node.spawn(Relay)
        copy = pickle.loads(pickle.dumps(target))
        assert copy == target
        assert hash(copy) == hash(target)
        assert {target: "x"}[copy] == "x"
        with trio.fail_after(TIMEOUT):
            assert await relay.ask("forward", copy, 2) == 7


async def test_tell_waits_when_the_mailbox_is_full() -> None:
    async with actors.open_node() as node, trio.open_nursery() as nursery:
        ref = await node.spawn(Gate, mailbox_size=3)
        sent: list[int] = []

        async def flood() -> None:
            await ref.tell("wait", 0)  # taken at once; blocks the actor
            for n in range(1, 100):
                await ref.tell("note", n)
                sent.append(n)

        nursery.start_soon(flood)
        await trio.testing.wait_all_tasks_blocked()
        assert sent == [1, 2, 3]  # the mailbox holds 3; the 4th tell waits
        actor_of(node, ref).open.set()
        with trio.fail_after(TIMEOUT):
            while len(sent) < 99:
                await trio.testing.wait_all_tasks_blocked()
            assert await ref.ask("seen") == list(range(100))


async def test_stop_handles_queued_messages_then_runs_on_stop() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        ref = await node.spawn(Counter, 0, log, name="c")
        for _ in range(5):
            await ref.tell("add")
        with trio.fail_after(TIMEOUT):
            await ref.stop()
        assert log == ["start c", "stop c"]
        assert await node.lookup("c") is None
        with pytest.raises(actors.ActorNotFoundError):
            await ref.tell("add")


async def test_kill_cancels_the_handler_and_skips_on_stop() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        ref = await node.spawn(Counter, 0, log, name="k")
        gate = await node.spawn(Gate)
        outcome: list[BaseException] = []

        async def ask_and_keep_error() -> None:
            with pytest.raises(actors.ActorStoppedError, match="was killed") as info:
                await gate.ask("wait")
            outcome.append(info.value)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(ask_and_keep_error)
            await actor_of(node, gate).started.wait()
            with trio.fail_after(TIMEOUT):
                await gate.kill()
                await ref.kill()
        assert _actor_gone(node, gate)
        assert len(outcome) == 1
        assert log == ["start k"]


async def test_closing_the_node_stops_actors_newest_first() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        for name in ("a", "b", "c"):
            await node.spawn(Counter, 0, log, name=name)
    assert log == ["start a", "start b", "start c", "stop c", "stop b", "stop a"]


async def test_a_failing_on_start_fails_spawn_and_frees_the_name() -> None:
    class Broken(actors.Actor):
        def on_start(self) -> None:
            raise RuntimeError("cannot start")

    async with actors.open_node() as node:
        with pytest.raises(RuntimeError, match="cannot start"):
            await node.spawn(Broken, name="x")
        assert await node.lookup("x") is None
        assert (await node.spawn(Counter, name="x")).name == "x"


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((object,), {}, TypeError, "Actor subclass"),
        ((Counter,), {"mailbox_size": 1}, ValueError, "mailbox_size"),
        ((Counter,), {"mailbox_size": -1}, ValueError, "mailbox_size"),
    ],
)
async def test_spawn_argument_errors(
    args: tuple[Any, ...], kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    async with actors.open_node() as node:
        with pytest.raises(error, match=match):
            await node.spawn(*args, **kwargs)


async def test_refs_need_a_node() -> None:
    ref = actors.ActorRef("elsewhere", "x")
    with pytest.raises(RuntimeError, match="open_node"):
        await ref.tell("add")
    async with actors.open_node(name="here"):
        with pytest.raises(actors.ActorNotFoundError, match="'elsewhere'"):
            await ref.tell("add")


def _actor_gone(node: actors.Node, ref: actors.ActorRef) -> bool:
    return node.lookup_local(ref.name) is None


class SlowStart(actors.Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_start(self) -> None:
        self.log.append("starting")
        await trio.sleep_forever()

    def on_stop(self) -> None:
        self.log.append("stopped")


async def test_a_spawn_cancelled_during_on_start_kills_the_actor(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        with trio.move_on_after(1):
            await node.spawn(SlowStart, log, name="slow")
        await trio.testing.wait_all_tasks_blocked()
        assert await node.lookup("slow") is None
        assert log == ["starting"]  # killed: no on_stop


async def test_an_actor_killed_during_on_start_fails_its_spawn() -> None:
    log: list[str] = []
    async with actors.open_node() as node:
        async with trio.open_nursery() as nursery:

            async def spawn() -> None:
                with pytest.raises(actors.ActorStoppedError, match="stopped while starting"):
                    await node.spawn(SlowStart, log, name="slow")

            nursery.start_soon(spawn)
            await trio.testing.wait_all_tasks_blocked()
            ref = await node.lookup("slow")
            assert ref is not None
            await ref.kill()
        assert await node.lookup("slow") is None


async def test_spawning_without_on_start_still_lets_other_tasks_run() -> None:
    """spawn() of a class without on_start does not wait for the actor's task,
    but passes a schedule point every SPAWNS_PER_YIELD calls."""
    from trimq.actors._runtime import SPAWNS_PER_YIELD

    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await trio.lowlevel.checkpoint()

    async with actors.open_node() as node:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(ticker)
            await trio.lowlevel.checkpoint()  # the ticker is running
            before = ticks
            refs = [await node.spawn(Plain) for _ in range(4 * SPAWNS_PER_YIELD)]
            assert ticks - before >= 3
            nursery.cancel_scope.cancel()
        # Each actor runs; a message sent right after spawn() waits in its mailbox.
        assert [await ref.ask("get") for ref in refs[:3]] == [0, 0, 0]


async def test_a_cancelled_spawn_without_on_start_leaves_no_actor() -> None:
    async with actors.open_node() as node:
        with trio.CancelScope() as scope:
            scope.cancel()
            await node.spawn(Plain, name="gone")
        await trio.testing.wait_all_tasks_blocked()
        assert await node.lookup("gone") is None


class Plain(actors.Actor):
    def __init__(self) -> None:
        self.n = 0

    def get(self) -> int:
        return self.n


class Stubborn(actors.Actor):
    def __init__(self, log: list[str]) -> None:
        self.log = log

    async def on_stop(self) -> None:
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.log.append("on_stop cancelled")
            raise


async def test_closing_the_node_kills_an_actor_whose_on_stop_overruns(
    autojump_clock: trio.testing.MockClock,
) -> None:
    log: list[str] = []
    start = trio.current_time()
    async with actors.open_node() as node:
        await node.spawn(Stubborn, log, shutdown=2.0)
    assert log == ["on_stop cancelled"]
    assert trio.current_time() - start == pytest.approx(2.0)

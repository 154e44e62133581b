"""Calls from other nodes that the receiving task handles at once.

A node handles a remote tell or ask in the task that received it, rather than
through the mailbox, when the actor is idle with nothing queued and the
handler is a plain ``def`` (``Node._handle_now``). These tests check that
nobody can tell the difference: order, crashes, restarts and handlers that
return something to wait for behave as through the mailbox.

Where a test needs a remote message to have reached node a before it goes
on, it asks a second actor on a over the same connection: node a handles
messages from one connection in order, so that answer means the first
message was handled or queued.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio

from trimq import actors

from .conftest import current

TIMEOUT = 10


class Recorder(actors.Actor):
    def __init__(self, log: list[object], gate: trio.Event | None = None) -> None:
        self.log = log
        self.gate = gate

    def append(self, item: object) -> int:
        self.log.append(item)
        return len(self.log)

    async def hold(self) -> None:
        assert self.gate is not None
        self.log.append("held")
        await self.gate.wait()

    def fail(self, text: str) -> None:
        raise KeyError(text)

    def later(self, value: int) -> Any:
        # A plain def that returns a coroutine: the actor's task must await it.
        return self._later(value)

    async def _later(self, value: int) -> int:
        await trio.lowlevel.checkpoint()
        self.log.append(("later", value))
        return value * 2


class Probe(actors.Actor):
    def ping(self) -> str:
        return "pong"


class Watcher(actors.Actor):
    def __init__(self, downs: list[actors.ExitReason], seen: trio.Event) -> None:
        self.downs = downs
        self.seen = seen

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        self.downs.append(reason)
        self.seen.set()


class SlowRestart(actors.Actor):
    def __init__(self, log: list[object], gate: trio.Event) -> None:
        self.log = log
        self.gate = gate

    async def on_restart(self, reason: actors.ExitReason) -> None:
        await self.gate.wait()
        self.log.append("restarted")

    def get(self) -> str:
        self.log.append("get")
        return "got"

    def fail(self) -> None:
        raise KeyError("down")


@contextlib.asynccontextmanager
async def pair() -> AsyncIterator[tuple[actors.Node, actors.Node, actors.ActorRef]]:
    """Node a listening, node b connected to it, and a Probe on a."""
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        with trio.fail_after(TIMEOUT):
            await b.connect(a.endpoints[0])
        probe = await a.spawn(Probe, name="probe")
        yield a, b, probe


async def test_remote_messages_keep_their_order_behind_queued_ones() -> None:
    log: list[object] = []
    gate = trio.Event()
    async with pair() as (a, _b, probe):
        ref = await a.spawn(Recorder, log, gate, name="rec")
        with trio.fail_after(TIMEOUT):
            with current(a):
                await ref.tell("hold")  # busy: what follows is queued
            for i in range(5):
                await ref.tell("append", i)
            assert await probe.ask("ping") == "pong"
            assert log == ["held"]  # all five reached a, and wait in the mailbox
            gate.set()
            # Some of these arrive while the queue drains, some once it is empty.
            for i in range(5, 10):
                await ref.tell("append", i)
            assert await ref.ask("append", 10) == 12
        assert log == ["held", *range(11)]


async def watched_recorder(
    a: actors.Node, log: list[object]
) -> tuple[actors.ActorRef, list[actors.ExitReason], trio.Event]:
    """A Recorder on a, monitored: its exit reasons, and an event set at the first."""
    downs: list[actors.ExitReason] = []
    seen = trio.Event()
    ref = await a.spawn(Recorder, log, name="rec")
    watcher = await a.spawn(Watcher, downs, seen)
    await watcher.ask("watch", ref)
    return ref, downs, seen


async def test_a_crash_handled_at_once_crashes_the_actor_as_any_crash() -> None:
    async with pair() as (a, _b, _):
        ref, downs, seen = await watched_recorder(a, [])
        with trio.fail_after(TIMEOUT):
            with pytest.raises(KeyError, match="boom") as caught:
                await ref.ask("fail", "boom")
            assert "raised by actor 'rec' handling fail()" in "\n".join(caught.value.__notes__)
            await seen.wait()
        assert [d.kind for d in downs] == ["crashed"]
        assert isinstance(downs[0].error, KeyError)
        assert a.lookup_local("rec") is None  # unsupervised: a crash ends it
        with pytest.raises(actors.ActorNotFoundError):
            await ref.ask("append", 1)


async def test_a_crashed_actor_handles_nothing_more_before_its_task_ends() -> None:
    log: list[object] = []
    async with pair() as (a, _b, probe):
        ref, downs, seen = await watched_recorder(a, log)
        with trio.fail_after(TIMEOUT):
            # Back to back: a handles the second before the crashed actor's task runs.
            await ref.tell("fail", "boom")
            await ref.tell("append", "after the crash")
            assert await probe.ask("ping") == "pong"
            await seen.wait()
        assert [d.kind for d in downs] == ["crashed"]
        assert log == []


async def test_a_def_that_returns_a_coroutine_is_awaited_by_the_actor() -> None:
    log: list[object] = []
    async with pair() as (a, _b, _):
        ref = await a.spawn(Recorder, log, name="rec")
        with trio.fail_after(TIMEOUT):
            assert await ref.ask("later", 21) == 42
            await ref.tell("later", 1)
            await ref.tell("append", "after")
            assert await ref.ask("append", "last") == 4
        assert log == [("later", 21), ("later", 1), "after", "last"]


async def test_a_remote_call_during_a_restart_waits_for_on_restart() -> None:
    log: list[object] = []
    gate = trio.Event()
    async with pair() as (a, _b, probe):
        supervisor = await a.spawn(
            actors.Supervisor,
            [actors.ChildSpec(SlowRestart, args=(log, gate), name="child")],
            name="sup",
        )
        ref = actors.ActorRef("a", "child")
        with trio.fail_after(TIMEOUT):
            with pytest.raises(KeyError):
                await ref.ask("fail")
            async with trio.open_nursery() as nursery:
                answers: list[object] = []

                async def ask_get() -> None:
                    answers.append(await ref.ask("get"))

                nursery.start_soon(ask_get)
                # Once the probe answers, a has the get (queued: on_restart waits).
                assert await probe.ask("ping") == "pong"
                assert log == []
                gate.set()
            assert answers == ["got"]
        assert log == ["restarted", "get"]
        with current(a):
            await supervisor.stop()

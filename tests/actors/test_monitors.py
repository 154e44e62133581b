"""Monitors: an actor is told, through its mailbox, when another one ends and why."""

from __future__ import annotations

import pytest
import trio
import trio.testing

from trimq import actors

from .conftest import actor_of, runtime_of

TIMEOUT = 5


class Watcher(actors.Actor):
    def __init__(self) -> None:
        self.downs: list[tuple[actors.ActorRef, actors.ExitReason]] = []
        self.got = trio.Event()
        self.released = trio.Event()
        self.events: list[str] = []

    async def hold(self) -> None:
        await self.released.wait()

    def note(self, text: str) -> None:
        self.events.append(text)

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def unwatch(self, ref: actors.ActorRef) -> None:
        self.demonitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        self.downs.append((ref, reason))
        self.events.append(f"down {ref.name}")
        self.got.set()


class Worker(actors.Actor):
    def fail(self) -> None:
        raise ValueError("bad input")

    async def hang(self) -> None:
        await trio.sleep_forever()

    def ping(self) -> str:
        return "pong"


async def _downs(
    node: actors.Node, watcher: actors.ActorRef
) -> list[tuple[actors.ActorRef, actors.ExitReason]]:
    actor = actor_of(node, watcher, Watcher)
    with trio.fail_after(TIMEOUT):
        await actor.got.wait()
    return actor.downs


async def test_a_crash_is_reported_with_its_error() -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher)
        worker = await node.spawn(Worker)
        await watcher.ask("watch", worker)
        with pytest.raises(ValueError, match="bad input"):
            await worker.ask("fail")
        [(ref, reason)] = await _downs(node, watcher)
        assert ref == worker
        assert reason.kind == "crashed"
        assert not reason.normal
        assert isinstance(reason.error, ValueError)
        assert str(reason) == "crashed: ValueError: bad input"


@pytest.mark.parametrize(("how", "kind"), [("stop", "stopped"), ("kill", "killed")])
async def test_stop_and_kill_are_reported(how: str, kind: str) -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher)
        worker = await node.spawn(Worker)
        await watcher.ask("watch", worker)
        await getattr(worker, how)()
        [(ref, reason)] = await _downs(node, watcher)
        assert (ref, reason.kind, reason.normal) == (worker, kind, kind == "stopped")


async def test_monitoring_an_actor_that_is_gone_reports_at_once() -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher)
        ghost = actors.ActorRef(node.name, "never-spawned")
        await watcher.ask("watch", ghost)
        [(ref, reason)] = await _downs(node, watcher)
        assert (ref, reason.kind) == (ghost, "not running")


async def test_demonitor_and_dead_watchers_get_nothing() -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher)
        other = await node.spawn(Watcher)
        worker = await node.spawn(Worker)
        await watcher.ask("watch", worker)
        await other.ask("watch", worker)
        await watcher.ask("unwatch", worker)
        await other.stop()
        await worker.kill()
        await trio.testing.wait_all_tasks_blocked()
        assert actor_of(node, watcher, Watcher).downs == []
        assert len(runtime_of(node).watches) == 0


async def test_a_notice_waits_for_room_in_a_full_mailbox() -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher, mailbox_size=2)
        worker = await node.spawn(Worker, name="w")
        await watcher.ask("watch", worker)
        await watcher.tell("hold")  # the watcher is busy from now on
        await watcher.tell("note", "first")
        await watcher.tell("note", "second")  # its mailbox is now full
        await worker.kill()
        await trio.testing.wait_all_tasks_blocked()
        actor = actor_of(node, watcher, Watcher)
        assert actor.downs == []  # the notice waits; it is not dropped
        actor.released.set()
        await _downs(node, watcher)
        assert actor.events == ["first", "second", "down w"]


async def test_on_down_cannot_be_asked_directly() -> None:
    async with actors.open_node() as node:
        watcher = await node.spawn(Watcher)
        with pytest.raises(AttributeError, match="no handler 'on_down'"):
            await watcher.tell("on_down")


async def test_a_monitor_set_between_incarnations_hears_when_the_actor_ends_for_good() -> None:
    # Its supervisor suspended it (an incarnation ended, the next not begun);
    # a monitor set then waits for the next incarnation, which never comes.
    async with actors.open_node() as node:
        sup = await node.spawn(actors.Supervisor, [actors.ChildSpec(Worker, name="w")])
        (worker,) = await sup.ask("children")
        await runtime_of(node).suspend(worker)  # what its supervisor would do
        watcher = await node.spawn(Watcher)
        await watcher.ask("watch", worker)
        await runtime_of(node).terminate(worker)
        [(ref, reason)] = await _downs(node, watcher)
        assert (ref, reason.kind) == (worker, "not running")

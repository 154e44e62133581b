"""The event bus of a node: publish(topic, event), subscribe(prefix), over inproc PUB/SUB."""

from __future__ import annotations

from typing import Any

import trio
import trio.testing

from trimq import actors

from .conftest import actor_of, runtime_of

TIMEOUT = 5


class Listener(actors.Actor):
    def __init__(self, *prefixes: str) -> None:
        self.prefixes = prefixes
        self.events: list[tuple[str, Any]] = []

    async def on_start(self) -> None:
        for prefix in self.prefixes:
            await self.subscribe(prefix)

    def on_event(self, topic: str, event: Any) -> None:
        self.events.append((topic, event))

    async def drop(self, prefix: str) -> None:
        await self.unsubscribe(prefix)

    def seen(self) -> list[tuple[str, Any]]:
        return list(self.events)

    def crash(self) -> None:
        raise RuntimeError("listener crashed")


class Speaker(actors.Actor):
    async def say(self, topic: str, event: Any) -> None:
        await self.publish(topic, event)


async def settle() -> None:
    await trio.testing.wait_all_tasks_blocked()


async def test_events_reach_matching_subscribers_in_order() -> None:
    async with actors.open_node() as node:
        chat = await node.spawn(Listener, "chat.")
        everything = await node.spawn(Listener, "")
        news = await node.spawn(Listener, "news.")
        speaker = await node.spawn(Speaker)
        payload = {"text": "hi"}
        await speaker.ask("say", "chat.lobby", payload)
        await node.publish("news.world", 1)
        await node.publish("chat.lobby", 2)
        await settle()
        assert await chat.ask("seen") == [("chat.lobby", payload), ("chat.lobby", 2)]
        assert await news.ask("seen") == [("news.world", 1)]
        assert [t for t, _ in await everything.ask("seen")] == [
            "chat.lobby",
            "news.world",
            "chat.lobby",
        ]
        # Locally the event is the very object published, not a copy.
        assert (await chat.ask("seen"))[0][1] is payload


async def test_overlapping_prefixes_deliver_once() -> None:
    async with actors.open_node() as node:
        both = await node.spawn(Listener, "chat.", "chat.room")
        await node.publish("chat.room.1", "x")
        await settle()
        assert await both.ask("seen") == [("chat.room.1", "x")]


async def test_unsubscribe_and_ended_subscribers_get_nothing() -> None:
    async with actors.open_node() as node:
        a = await node.spawn(Listener, "t.")
        b = await node.spawn(Listener, "t.")
        await a.ask("drop", "t.")
        await b.stop()
        await node.publish("t.1", "x")
        await settle()
        assert await a.ask("seen") == []
        assert runtime_of(node).bus.subscribers() == {}


async def test_a_restarted_subscriber_subscribes_again_from_on_start() -> None:
    async with actors.open_node() as node:
        sup = await node.spawn(actors.Supervisor, [actors.ChildSpec(Listener, ("t.",), name="l")])
        (listener,) = await sup.ask("children")
        await listener.tell("crash")
        await settle()  # the crash, the supervisor's verdict and the restart all ran
        assert runtime_of(node).bus.subscribers() == {"t.": {"l"}}
        await node.publish("t.after", 1)
        await settle()
        assert await listener.ask("seen") == [("t.after", 1)]


class SlowListener(Listener):
    def __init__(self, *prefixes: str) -> None:
        super().__init__(*prefixes)
        self.gate = trio.Event()

    async def hold(self) -> None:
        await self.gate.wait()


async def test_a_slow_subscriber_delays_publishing_instead_of_losing_events() -> None:
    count = 3000  # beyond what the bus's queues hold (its PUB/SUB pipe: 2000)
    async with actors.open_node() as node, trio.open_nursery() as nursery:
        slow = await node.spawn(SlowListener, "e.", mailbox_size=2)
        await slow.tell("hold")  # busy from now on
        published = 0

        async def publish_many() -> None:
            nonlocal published
            for n in range(count):
                await node.publish("e.n", n)
                published += 1

        nursery.start_soon(publish_many)
        await settle()
        assert published < count  # waiting, not dropping
        actor_of(node, slow).gate.set()
        with trio.fail_after(TIMEOUT):
            while published < count:
                await settle()
            await settle()
        assert [e for _, e in await slow.ask("seen")] == list(range(count))

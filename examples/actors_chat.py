"""A chat room on a node's event bus: members subscribe to a room's topic prefix.

::

    alice, bob   subscribe to "room.lobby"       (they hear the lobby)
    carol        subscribes to "room."           (she hears every room)
    publish("room.lobby", ...) / publish("room.games", ...)

Each member is an actor; ``say`` publishes on the bus, and ``on_event``
receives what matches its subscriptions, through its mailbox, in publishing
order. Locally the event object itself is delivered, never copied or pickled.
When bob leaves (``unsubscribe``), he hears nothing more.

Run it with ``python examples/actors_chat.py``. Expected output (members'
lines may interleave with each other)::

    alice: [room.lobby] alice: hello, lobby
    bob: [room.lobby] alice: hello, lobby
    carol: [room.lobby] alice: hello, lobby
    carol: [room.games] bob: anyone for chess?
    alice: [room.lobby] carol: bob left, it is just us
    carol: [room.lobby] carol: bob left, it is just us
    main: bob heard 1 message, carol heard 3
"""

from __future__ import annotations

import attrs
import trio
import trio.testing

from trimq import actors


@attrs.frozen
class Line:
    author: str
    text: str


class Member(actors.Actor):
    def __init__(self, name: str, *rooms: str) -> None:
        self.name = name
        self.rooms = rooms
        self.heard: list[Line] = []

    async def on_start(self) -> None:
        for room in self.rooms:
            await self.subscribe(room)

    async def say(self, room: str, text: str) -> None:
        await self.publish(room, Line(self.name, text))

    async def leave(self, room: str) -> None:
        await self.unsubscribe(room)

    def on_event(self, topic: str, line: Line) -> None:
        self.heard.append(line)
        print(f"{self.name}: [{topic}] {line.author}: {line.text}")

    def count(self) -> int:
        return len(self.heard)


async def main() -> None:
    async with actors.open_node(name="chat") as node:
        alice = await node.spawn(Member, "alice", "room.lobby")
        bob = await node.spawn(Member, "bob", "room.lobby")
        carol = await node.spawn(Member, "carol", "room.")
        await alice.ask("say", "room.lobby", "hello, lobby")
        await bob.ask("say", "room.games", "anyone for chess?")
        # Events reach members through the bus's own task: let it run dry
        # rather than sleep for an arbitrary time.
        await trio.testing.wait_all_tasks_blocked()
        await bob.ask("leave", "room.lobby")
        await carol.ask("say", "room.lobby", "bob left, it is just us")
        await trio.testing.wait_all_tasks_blocked()
        heard_by_bob, heard_by_carol = await bob.ask("count"), await carol.ask("count")
        print(f"main: bob heard {heard_by_bob} message, carol heard {heard_by_carol}")


if __name__ == "__main__":
    trio.run(main)

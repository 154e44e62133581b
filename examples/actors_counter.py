"""The smallest actor program: a counter, asked and told from a trio task.

An actor is a plain class; its public methods are its message handlers, and it
handles one message at a time, so ``self.count`` needs no lock::

    main task --tell add(1) x 1000--> Counter   (fire and forget, in order)
    main task --ask total()---------> Counter --> 1000

``ask`` returns the handler's result (or raises its exception); ``tell``
returns as soon as the message is in the actor's mailbox. ``ref.proxy.name(...)``
is the attribute-style spelling of ``ref.ask("name", ...)``.

Run it with ``python examples/actors_counter.py``. Expected output::

    main: spawned Counter-1 on node demo
    main: told add(1) 1000 times
    main: total() -> 1000
    main: proxy.add(5) -> 1005
    main: ask('divide', 0) raised ZeroDivisionError; the counter crashed and is gone
    counter: stopped at 1005
"""

from __future__ import annotations

import trio

from trimq import actors


class Counter(actors.Actor):
    def __init__(self) -> None:
        self.count = 0

    def add(self, n: int) -> int:
        self.count += n
        return self.count

    def total(self) -> int:
        return self.count

    def divide(self, by: int) -> float:
        return self.count / by

    def on_stop(self) -> None:
        print(f"counter: stopped at {self.count}")


async def main() -> None:
    async with actors.open_node(name="demo") as node:
        counter = await node.spawn(Counter)
        print(f"main: spawned {counter.name} on node {counter.node}")
        for _ in range(1000):
            await counter.tell("add", 1)
        print("main: told add(1) 1000 times")
        print(f"main: total() -> {await counter.ask('total')}")
        print(f"main: proxy.add(5) -> {await counter.proxy.add(5)}")
        try:
            await counter.ask("divide", 0)
        except ZeroDivisionError:
            gone = await node.lookup(counter.name) is None
            print(
                "main: ask('divide', 0) raised ZeroDivisionError; the counter crashed"
                + (" and is gone" if gone else "")
            )


if __name__ == "__main__":
    import logging

    logging.getLogger("trimq").setLevel(logging.ERROR)  # the crash above is on purpose
    trio.run(main)

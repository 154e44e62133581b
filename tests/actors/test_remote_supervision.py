"""A supervisor on one node supervising children on others (loopback, in-process nodes).

Worker nodes run in tasks of their own; cancelling one ends it without a
goodbye, as if its process had been killed.
"""

from __future__ import annotations

from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest
import trio

from trimq import actors
from trimq.actors import ChildSpec, Supervisor

TIMEOUT = 10
FAST: dict[str, Any] = {"heartbeat": 0.05, "timeout": 0.4}


class Worker(actors.Actor):
    def __init__(self) -> None:
        self.count = 0

    def bump(self) -> int:
        self.count += 1
        return self.count

    def where(self) -> str:
        return self.node.name

    def crash(self) -> None:
        raise RuntimeError("worker crashed")


def hub_node() -> AbstractAsyncContextManager[actors.Node]:
    return actors.open_node("hub", insecure=True, **FAST)


async def worker_node(
    name: str,
    tags: list[str],
    endpoint: str,
    task_status: trio.TaskStatus[tuple[trio.CancelScope, str]],
) -> None:
    options = {"listen": endpoint, "insecure": True, "tags": tags, **FAST}
    with trio.CancelScope() as scope:
        async with actors.open_node(name, **options) as node:
            task_status.started((scope, node.endpoints[0]))
            await trio.sleep_forever()


Reports = trio.MemoryReceiveChannel[tuple[str, Any]]


async def children_on(
    hub: actors.Node, sup: actors.ActorRef, wanted: list[str], reports: Reports
) -> list[actors.ActorRef]:
    """The supervisor's children, once they sit on the ``wanted`` nodes:
    looked at again after each report of the supervisor (see ``hub.events``)."""
    with trio.fail_after(TIMEOUT):
        while True:
            refs: list[actors.ActorRef] = await sup.ask("children")
            if sorted(ref.node for ref in refs) == sorted(wanted):
                return refs
            await reports.receive()


async def test_a_remote_child_that_crashes_is_restarted_behind_the_same_ref() -> None:
    async with (
        hub_node() as hub,
        trio.open_nursery() as nursery,
    ):
        _, endpoint = await nursery.start(worker_node, "w1", ["worker"], "tcp://127.0.0.1:*")
        await hub.connect(endpoint)
        sup = await hub.spawn(Supervisor, [ChildSpec(Worker, name="job", on="worker")])
        (child,) = await sup.ask("children")
        assert child == actors.ActorRef("w1", "job")
        assert await child.ask("bump") == 1
        with pytest.raises(RuntimeError, match="worker crashed"):
            await child.ask("crash")
        # Queued in the child's mailbox, which outlives the crash: answered by
        # the new instance once the hub's supervisor has had it restarted.
        with trio.fail_after(TIMEOUT):
            assert await child.ask("bump") == 1
        nursery.cancel_scope.cancel()


async def test_children_of_a_lost_node_start_again_where_their_placement_matches() -> None:
    async with (
        hub_node() as hub,
        hub.events(actors.REPORTS) as reports,
        trio.open_nursery() as nursery,
    ):
        scope1, ep1 = await nursery.start(worker_node, "w1", ["worker"], "tcp://127.0.0.1:*")
        _, ep2 = await nursery.start(worker_node, "w2", ["worker"], "tcp://127.0.0.1:*")
        await hub.connect(ep1)
        await hub.connect(ep2)
        specs = [ChildSpec(Worker, name=f"job-{i}", on="worker") for i in range(4)]
        sup = await hub.spawn(Supervisor, specs, max_restarts=10)
        first = await children_on(hub, sup, ["w1", "w1", "w2", "w2"], reports)
        scope1.cancel()  # w1 dies, with two children
        moved = await children_on(hub, sup, ["w2"] * 4, reports)
        assert [ref.name for ref in moved] == [ref.name for ref in first]
        for ref in moved:
            assert await ref.ask("where") == "w2"
        nursery.cancel_scope.cancel()


async def test_a_child_placed_on_a_named_node_waits_for_it_to_return() -> None:
    async with (
        hub_node() as hub,
        hub.events(actors.REPORTS) as reports,
        trio.open_nursery() as nursery,
    ):
        scope, endpoint = await nursery.start(worker_node, "w1", [], "tcp://127.0.0.1:*")
        await hub.connect(endpoint)
        sup = await hub.spawn(
            Supervisor, [ChildSpec(Worker, name="pinned", on="w1")], retry=0.05, max_restarts=10
        )
        await children_on(hub, sup, ["w1"], reports)
        scope.cancel()
        await children_on(hub, sup, [], reports)  # nowhere to go while w1 is away
        await nursery.start(worker_node, "w1", [], endpoint)  # w1 is back, same address
        (child,) = await children_on(hub, sup, ["w1"], reports)
        assert await child.ask("bump") == 1
        nursery.cancel_scope.cancel()


async def test_a_remote_supervisors_child_is_no_child_of_a_local_namesake() -> None:
    # The hub's supervisor "pool" places a child on w1, where an unrelated
    # actor is also called "pool": stopping that one must leave the child be.
    async with hub_node() as hub, trio.open_nursery() as nursery:
        _, endpoint = await nursery.start(worker_node, "w1", [], "tcp://127.0.0.1:*")
        await hub.connect(endpoint)
        namesake = await hub.spawn(Worker, name="pool", on="w1")
        sup = await hub.spawn(Supervisor, [ChildSpec(Worker, name="job", on="w1")], name="pool")
        (child,) = await sup.ask("children")
        with trio.fail_after(TIMEOUT):
            await namesake.stop()
            assert await child.ask("bump") == 1  # the same incarnation, still running
        nursery.cancel_scope.cancel()

"""Nodes on loopback: remote tell/ask/spawn/lookup/stop, errors, timeouts, node loss.

Each test runs real nodes in this process, talking ZMTP over tcp on 127.0.0.1
(insecure mode; CURVE has its own tests in test_node_security.py).
"""

from __future__ import annotations

import contextlib
import pickle
import sys
import types
from collections.abc import AsyncIterator
from typing import Any

import pytest
import trio
import trio.testing
import zmq

from trimq import actors
from trimq.actors import _wire as wire
from trimq.actors._events import EventBridge

from .conftest import current

TIMEOUT = 10
FAST: dict[str, Any] = {"heartbeat": 0.05, "timeout": 0.4}


class Counter(actors.Actor):
    def __init__(
        self,
        start: int = 0,
        log: list[str] | None = None,
        cancelled: trio.Event | None = None,
        busy: trio.Event | None = None,
    ) -> None:
        self.count = start
        self.log = log if log is not None else []
        self.cancelled = cancelled
        self.busy = busy

    def add(self, n: int = 1) -> int:
        self.count += n
        return self.count

    def get(self) -> int:
        return self.count

    def fail(self, text: str) -> None:
        raise KeyError(text)

    async def slow(self) -> None:
        if self.busy is not None:
            self.busy.set()
        try:
            await trio.sleep_forever()
        except trio.Cancelled:
            self.log.append("slow cancelled")
            if self.cancelled is not None:
                self.cancelled.set()
            raise

    async def ask_back(self, ref: actors.ActorRef) -> Any:
        # A ref that travelled in a message, used from here.
        return await ref.ask("get")

    def on_stop(self) -> None:
        self.log.append("stopped")


class Unpicklable(Exception):
    def __init__(self) -> None:
        super().__init__("cannot travel")
        self.lock = trio.Lock()  # not picklable

    def __reduce__(self) -> Any:
        raise TypeError("no pickling")


class Troubled(actors.Actor):
    def raise_unpicklable(self) -> None:
        raise Unpicklable


@contextlib.asynccontextmanager
async def pair(**options: Any) -> AsyncIterator[tuple[actors.Node, actors.Node]]:
    """Node "a" listening on loopback, node "b" connected to it."""
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True, **options) as a,
        actors.open_node("b", insecure=True, **options) as b,
    ):
        with trio.fail_after(TIMEOUT):
            await b.connect(a.endpoints[0])
        yield a, b


async def test_connect_returns_a_node_ref_and_both_sides_know_each_other() -> None:
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True, tags=["gpu"]) as a,
        actors.open_node("b", insecure=True, tags=["region=eu"]) as b,
    ):
        peer = await b.connect(a.endpoints[0])
        assert peer == actors.NodeRef("a", frozenset({"gpu"}))
        assert peer.endpoint == a.endpoints[0]
        assert b.peers == [peer]
        assert [(p.name, p.tags) for p in a.peers] == [("b", frozenset({"region=eu"}))]


async def test_remote_tell_ask_and_proxy_both_ways() -> None:
    async with pair() as (a, b):
        on_a = await a.spawn(Counter, 10, name="counter")
        with trio.fail_after(TIMEOUT):
            assert await on_a.ask("add", 2) == 12
            await on_a.tell("add", 3)
            assert await on_a.ask("get") == 15
            # a reaches b's actors through the same connection.
            on_b = await b.spawn(Counter, 1, name="counter")
            with current(a):
                assert await on_b.ask("add", 1) == 2
        # ActorRef methods use the node of the calling task (the inner one here).
        assert await on_a.proxy.add(1) == 16


async def test_a_remote_handler_error_is_re_raised_with_the_remote_traceback() -> None:
    async with pair() as (a, _b):
        ref = await a.spawn(Counter, name="c")
        with pytest.raises(KeyError, match="boom") as caught:
            await ref.ask("fail", "boom")
        notes = "\n".join(caught.value.__notes__)
        assert "raised by actor 'c' handling fail()" in notes
        assert "remote traceback (node a)" in notes
        assert "in fail" in notes  # the handler's frame, from node a


class Log(actors.Actor):
    def __init__(self, items: list[object]) -> None:
        self.items = items

    def append(self, item: object) -> None:
        self.items.append(item)


class Relay(actors.Actor):
    async def relay(self, ref: actors.ActorRef, item: object) -> str:
        await ref.tell("append", item)
        return "relayed"


class WhereAmI(actors.Actor):
    def where(self) -> str:
        return actors.current_node().name

    async def where_async(self) -> str:
        return actors.current_node().name


async def test_an_actor_uses_its_own_node_whichever_task_spawned_it() -> None:
    async with pair() as (a, b):
        assert actors.current_node() is b  # the innermost open_node
        ref = await a.spawn(WhereAmI)
        # Asked from b: handled in a's receive task, then in the actor's task.
        assert await ref.ask("where") == "a"
        assert await ref.ask("where_async") == "a"


async def test_what_arrives_before_a_reply_is_handled_before_the_ask_returns() -> None:
    # The asker reads its reply from the socket itself (actors/_turns.py):
    # the tell that came first must still be handled first.
    items: list[object] = []
    async with pair() as (a, b):
        on_b = await b.spawn(Log, items, name="log")
        relay = await a.spawn(Relay)
        with trio.fail_after(TIMEOUT):
            for i in range(20):
                assert await relay.ask("relay", on_b, i) == "relayed"
                assert items == list(range(i + 1))


async def test_concurrent_asks_on_one_link_each_get_their_own_answer() -> None:
    async with pair() as (a, _b):
        ref = await a.spawn(Counter, name="c")
        answers: list[int] = []
        timed_out: list[int] = []

        async def add(i: int) -> None:
            answers.append(await ref.ask("add", 1))

        async def give_up(i: int) -> None:
            # Asks that time out and cancel their handler, among the others.
            with pytest.raises(TimeoutError):
                await ref.ask("slow", timeout=0.01)
            timed_out.append(i)

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for i in range(60):
                    nursery.start_soon(give_up if i % 10 == 0 else add, i)
        assert sorted(answers) == list(range(1, 55))
        assert len(timed_out) == 6
        assert await ref.ask("get") == 54


async def test_an_exception_that_cannot_travel_becomes_an_actor_error() -> None:
    async with pair() as (a, _b):
        ref = await a.spawn(Troubled)
        with pytest.raises(actors.ActorError, match="cannot travel") as caught:
            await ref.ask("raise_unpicklable")
        assert caught.value.type_name.endswith("Unpicklable")
        assert "raise_unpicklable" in caught.value.traceback_text


async def test_unknown_handlers_and_actors_fail_clearly() -> None:
    async with pair() as (a, _b):
        ref = await a.spawn(Counter, name="c")
        with pytest.raises(AttributeError, match="no handler 'nope'"):
            await ref.ask("nope")
        with pytest.raises(actors.ActorNotFoundError, match="no actor named 'ghost'"):
            await actors.ActorRef("a", "ghost").ask("get")
        with pytest.raises(actors.ActorNotFoundError, match="node 'elsewhere' is not connected"):
            await actors.ActorRef("elsewhere", "c").ask("get")


async def test_a_remote_ask_timeout_cancels_the_remote_handler() -> None:
    cancelled = trio.Event()
    async with pair() as (a, _b):
        # Node a runs in this process, so its local spawn passes the Event itself.
        ref = await a.spawn(Counter, 0, None, cancelled, name="c")
        with pytest.raises(TimeoutError, match="did not answer slow"):
            await ref.ask("slow", timeout=0.2)
        with trio.fail_after(TIMEOUT):
            await cancelled.wait()
            # The actor goes on with the next message.
            assert await ref.ask("add", 1) == 1


async def test_refs_travel_inside_messages_between_nodes() -> None:
    async with pair() as (a, b):
        on_a = await a.spawn(Counter, 7, name="x")
        on_b = await b.spawn(Counter, 0, name="y")
        # b asks its own actor to ask the one on a, through a ref it was sent.
        with trio.fail_after(TIMEOUT):
            assert await on_b.ask("ask_back", on_a) == 7
            # and the other way round, the ref travelling to node a.
            assert await on_a.ask("ask_back", on_b) == 0


async def test_spawn_on_another_node_by_name_tag_or_any() -> None:
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True, tags=["gpu"]) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        node_a = await b.connect(a.endpoints[0])
        for on in (node_a, "a", "gpu", "*"):
            ref = await b.spawn(Counter, 5, on=on)
            assert ref.node == "a"
            assert await ref.ask("add", 1) == 6
        named = await b.spawn(Counter, name="named", on="a")
        assert named == actors.ActorRef("a", "named")
        with pytest.raises(ValueError, match="already runs"):
            await b.spawn(Counter, name="named", on="a")
        with pytest.raises(actors.ActorNotFoundError, match="named or tagged 'tpu'"):
            await b.spawn(Counter, on="tpu")


async def test_a_failing_remote_on_start_fails_the_spawn() -> None:
    class Broken(actors.Actor):
        def on_start(self) -> None:
            raise RuntimeError("cannot start here")

    async with pair() as (a, b):
        with pytest.raises(RuntimeError, match="cannot start here"):
            await b.spawn(Broken, name="broken", on="a")
        assert a.lookup_local("broken") is None


async def test_lookup_finds_actors_on_any_connected_node() -> None:
    async with pair() as (a, b):
        ref = await a.spawn(Counter, name="wanted")
        assert await b.lookup("wanted") == ref
        assert await b.lookup("missing") is None
        assert b.lookup_local("wanted") is None


async def test_remote_stop_runs_on_stop_and_kill_does_not() -> None:
    log: list[str] = []
    async with pair() as (a, b):
        stopped = await a.spawn(Counter, 0, log, name="s")
        killed = await a.spawn(Counter, 0, log, name="k")
        await stopped.stop()
        assert log == ["stopped"]
        await killed.kill()
        assert log == ["stopped"]
        assert await b.lookup("s") is None
        assert await b.lookup("k") is None


async def _node_a(
    endpoint: str,
    busy: trio.Event | None,
    task_status: trio.TaskStatus[tuple[trio.CancelScope, str]],
) -> None:
    # Node "a" in a task of its own, so that cancelling it ends it without a
    # goodbye: its sockets close as if its process had been killed.
    with trio.CancelScope() as scope:
        async with actors.open_node("a", listen=endpoint, insecure=True, **FAST) as a:
            await a.spawn(Counter, 0, None, None, busy, name="c")
            task_status.started((scope, a.endpoints[0]))
            await trio.sleep_forever()


async def _until_peers(node: actors.Node, names: list[str]) -> None:
    with trio.fail_after(TIMEOUT):
        while [peer.name for peer in node.peers] != names:
            await node.membership_changed()


async def test_a_lost_node_fails_pending_asks_then_rejoins_when_it_returns() -> None:
    async with actors.open_node("b", insecure=True, **FAST) as b, trio.open_nursery() as nursery:
        busy = trio.Event()
        scope, endpoint = await nursery.start(_node_a, "tcp://127.0.0.1:*", busy)
        await b.connect(endpoint)
        ref = actors.ActorRef("a", "c")
        failed = trio.Event()

        async def ask_forever(task_status: trio.TaskStatus[None]) -> None:
            task_status.started()
            with pytest.raises(actors.ActorStoppedError, match="node 'a' lost"):
                await ref.ask("slow")
            failed.set()

        await nursery.start(ask_forever)
        with trio.fail_after(TIMEOUT):
            await busy.wait()  # the ask is being handled on node a
        scope.cancel()  # node a dies
        with trio.fail_after(TIMEOUT):
            await failed.wait()
        assert b.peers == []
        with pytest.raises(actors.ActorNotFoundError, match="'a' was lost"):
            await ref.ask("get")
        # A new node a at the same address: b's connection finds it again.
        await nursery.start(_node_a, endpoint, None)
        await _until_peers(b, ["a"])
        assert await ref.ask("get") == 0  # the new node's actor
        nursery.cancel_scope.cancel()


async def test_a_node_that_closes_says_goodbye() -> None:
    async with actors.open_node("b", insecure=True, **FAST) as b:
        async with actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a:
            await b.connect(a.endpoints[0])
            assert [p.name for p in b.peers] == ["a"]
        await _until_peers(b, [])


class Listener(actors.Actor):
    """Sends every event under its prefix to a channel (the test is in this process)."""

    def __init__(self, prefix: str, out: trio.MemorySendChannel[tuple[str, Any]]) -> None:
        self.prefix = prefix
        self.out = out

    async def on_start(self) -> None:
        await self.subscribe(self.prefix)

    async def on_event(self, topic: str, event: Any) -> None:
        await self.out.send((topic, event))


async def heard(
    inbox: trio.MemoryReceiveChannel[tuple[str, Any]], wanted: list[tuple[str, Any]]
) -> None:
    """Read ``inbox`` until every ``wanted`` event arrived, in any order (two
    publishers' events interleave); probes from the slow joiner are skipped."""
    missing = list(wanted)
    with trio.fail_after(TIMEOUT):
        async for item in inbox:
            if item in missing:
                missing.remove(item)
            if not missing:
                return


async def joined(
    node: actors.Node, topic: str, inboxes: list[trio.MemoryReceiveChannel[tuple[str, Any]]]
) -> None:
    """Publish probes until every inbox got one: ZeroMQ's slow joiner (a new
    subscription takes a moment to reach the publishing node)."""
    with trio.fail_after(TIMEOUT):
        for inbox in inboxes:
            while True:
                await node.publish(topic, "probe")
                with trio.move_on_after(0.05):
                    await inbox.receive()
                    break


async def test_events_reach_subscribers_on_every_node() -> None:
    to_a, from_a = trio.open_memory_channel[tuple[str, Any]](100)
    to_b, from_b = trio.open_memory_channel[tuple[str, Any]](100)
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", listen="tcp://127.0.0.1:*", insecure=True) as b,
    ):
        await a.spawn(Listener, "room.", to_a)
        await b.spawn(Listener, "room.", to_b)
        await b.connect(a.endpoints[0])
        await joined(a, "room.probe", [from_a, from_b])
        await joined(b, "room.probe", [from_a, from_b])
        await a.publish("room.1", {"from": "a"})
        await b.publish("room.2", ("from", "b"))
        await a.publish("other", "not subscribed")
        for inbox in (from_a, from_b):
            await heard(inbox, [("room.1", {"from": "a"}), ("room.2", ("from", "b"))])
        # Delivered once per node: nothing comes back around the loop before
        # each publisher's next event.
        await a.publish("room.end", "a")
        await b.publish("room.end", "b")
        for inbox in (from_a, from_b):
            with trio.fail_after(TIMEOUT):
                rest = sorted([await inbox.receive(), await inbox.receive()])
            assert rest == [("room.end", "a"), ("room.end", "b")]


async def test_a_node_that_only_connects_sends_its_events_over_its_links(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # b listens nowhere, so it has no events PUB: its events for a travel as
    # EVENT messages on its link, for the topics a's actors subscribe to.
    arrived: list[str] = []
    on_event = EventBridge.on_event  # the EVENT handler, as each node's cluster takes it

    async def spy(bridge: EventBridge, link: Any, env: wire.Envelope, peer: Any) -> None:
        arrived.append(env.head(wire.Event).topic)
        await on_event(bridge, link, env, peer)

    monkeypatch.setattr(EventBridge, "on_event", spy)
    to_a, from_a = trio.open_memory_channel[tuple[str, Any]](100)
    async with pair() as (a, b):
        counter = await a.spawn(Counter)
        listener = await a.spawn(Listener, "room.", to_a)
        await joined(b, "room.probe", [from_a])  # a's subscription reached b
        await b.publish("other", "nobody on a wants this")
        await b.publish("room.1", {"from": "b"})
        await heard(from_a, [("room.1", {"from": "b"})])
        assert "other" not in arrived  # b sent only what a subscribes to
        # a's last subscriber goes: b hears so, and sends nothing more.
        with current(a):
            await listener.stop()
        await counter.ask("get")  # after a's news on the link
        sent_before = len(arrived)
        await b.publish("room.2", "unwanted now")
        await counter.ask("get")  # after b's event, had it gone
        assert len(arrived) == sent_before


Notice = tuple[actors.ActorRef, actors.ExitReason]


class Watcher(actors.Actor):
    """Monitors refs on request; sends each notice to a channel."""

    def __init__(
        self, out: trio.MemorySendChannel[tuple[actors.ActorRef, actors.ExitReason]]
    ) -> None:
        self.out = out

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def unwatch(self, ref: actors.ActorRef) -> None:
        self.demonitor(ref)

    async def on_down(self, ref: actors.ActorRef, reason: actors.ExitReason) -> None:
        await self.out.send((ref, reason))


async def test_monitors_across_nodes_report_crashes_absence_and_node_loss() -> None:
    send, notices = trio.open_memory_channel[Notice](10)
    async with actors.open_node("b", insecure=True, **FAST) as b, trio.open_nursery() as nursery:
        scope, endpoint = await nursery.start(_node_a, "tcp://127.0.0.1:*", None)
        await b.connect(endpoint)
        watcher = await b.spawn(Watcher, send)
        doomed = await b.spawn(Counter, on="a", name="doomed")
        await watcher.ask("watch", doomed)
        with pytest.raises(KeyError):
            await doomed.ask("fail", "bad input")
        with trio.fail_after(TIMEOUT):
            ref, reason = await notices.receive()
        assert ref == doomed
        assert reason.kind == "crashed"
        assert isinstance(reason.error, KeyError)
        # An actor that does not exist there is reported at once.
        await watcher.ask("watch", actors.ActorRef("a", "ghost"))
        with trio.fail_after(TIMEOUT):
            assert (await notices.receive())[1].kind == "not running"
        # demonitor: nothing comes for that one; the node's loss reports the other.
        quiet = await b.spawn(Counter, on="a", name="quiet")
        survivor = actors.ActorRef("a", "c")
        await watcher.ask("watch", quiet)
        await watcher.ask("watch", survivor)
        await watcher.ask("unwatch", quiet)
        scope.cancel()  # node a dies
        with trio.fail_after(TIMEOUT):
            ref, reason = await notices.receive()
        assert (ref, reason.kind) == (survivor, "node lost")
        await trio.testing.wait_all_tasks_blocked()
        with pytest.raises(trio.WouldBlock):
            notices.receive_nowait()
        nursery.cancel_scope.cancel()


class Sink(actors.Actor):
    def __init__(self) -> None:
        self.sizes: list[int] = []

    def take(self, data: bytes) -> None:
        self.sizes.append(len(data))

    def taken(self) -> list[int]:
        return self.sizes


async def test_a_message_over_max_message_is_refused_and_the_node_goes_on() -> None:
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True, max_message=10_000) as a,
        actors.open_node("b", insecure=True, **FAST) as b,
    ):
        await b.connect(a.endpoints[0])
        sink = await a.spawn(Sink, name="sink")
        await sink.tell("take", b"x" * 100_000)  # dropped with its connection
        with trio.fail_after(TIMEOUT):
            while True:  # b's connection comes back by itself; small messages pass
                try:
                    await sink.tell("take", b"y" * 10)
                    if await sink.ask("taken", timeout=1.0):
                        break
                except (actors.ActorStoppedError, actors.ActorNotFoundError, TimeoutError):
                    await trio.sleep(0.05)  # reconnecting: nothing announces when it is done
        assert 100_000 not in await sink.ask("taken")


async def test_heartbeat_and_timeout_are_checked_as_the_node_opens() -> None:
    with pytest.raises(ValueError, match="timeout > heartbeat"):
        async with actors.open_node(heartbeat=1.0, timeout=0.5):
            pass  # pragma: no cover


def _by_reference(module: str, name: str) -> bytes:
    # A pickle of (class, args, kwargs) naming module.name, which the node
    # then cannot import: the class (and the module, if new) exist only
    # while it is pickled.
    cls = type(name, (actors.Actor,), {"__module__": module})
    known = module in sys.modules
    holder = sys.modules[module] if known else types.ModuleType(module)
    setattr(holder, name, cls)
    sys.modules[module] = holder
    try:
        return pickle.dumps((cls, (), {}))
    finally:
        delattr(holder, name)
        if not known:
            del sys.modules[module]


async def test_a_spawn_of_a_class_the_node_cannot_import_says_so_in_a_flag() -> None:
    # What makes the asker send the class by value: a flag in the reply's
    # header, not the text of the error.
    async with actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a:
        ctx = zmq.Context()
        try:
            raw = ctx.socket(zmq.DEALER)
            raw.linger = 0
            raw.routing_id = b"raw"
            raw.connect(a.endpoints[0])
            raw.send_multipart(wire.encode_envelope(wire.Hello(name="raw")))

            async def reply_to(rid: int, payload: bytes) -> wire.Reply:
                raw.send_multipart(wire.encode_envelope(wire.Spawn(id=rid), (b"c", payload)))
                while True:
                    with trio.fail_after(TIMEOUT):
                        frames = await trio.to_thread.run_sync(raw.recv_multipart)
                    env = wire.decode_envelope(frames)
                    if env.kind == wire.REPLY and env.head(wire.Reply).id == rid:
                        return env.head(wire.Reply)

            missing = await reply_to(1, _by_reference("trimq_no_such_module", "Gone"))
            assert missing.ok is False
            assert missing.missing_module is True
            assert "No module named 'trimq_no_such_module'" in missing.message
            absent = await reply_to(2, _by_reference("trimq", "NoSuchActor"))
            assert absent.missing_module is True
            other = await reply_to(3, pickle.dumps(("not", "a spawn")))
            assert other.ok is False
            assert other.missing_module is False
        finally:
            ctx.destroy(linger=0)

"""Full mailboxes never stall a link: credit makes the sender wait, and a
peer can make a node hold only so much of its state (PeerLimits)."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
import trio
import zmq

from trimq import actors
from trimq.actors import _cluster, _flow
from trimq.actors import _wire as wire
from trimq.actors._exit import ExitReason

from .conftest import current, runtime_of

TIMEOUT = 10
GATES: dict[str, trio.Event] = {}


class Slow(actors.Actor):
    """Takes its first call, then waits at the gate named after it."""

    def on_start(self) -> None:
        self.items: list[Any] = []

    async def put(self, item: Any) -> None:
        self.items.append(item)
        await GATES[self.ref.name].wait()

    def taken(self) -> list[Any]:
        return self.items


class Echo(actors.Actor):
    def echo(self, value: Any) -> Any:
        return value


DOWNS: list[tuple[str, str]] = []
DOWN_SEEN: list[trio.Event] = []


class Watcher(actors.Actor):
    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def on_down(self, ref: actors.ActorRef, reason: ExitReason) -> None:
        DOWNS.append((ref.name, reason.kind))
        DOWN_SEEN.pop().set()


async def next_down() -> tuple[str, str]:
    seen = trio.Event()
    DOWN_SEEN.append(seen)
    await seen.wait()
    return DOWNS[-1]


@asynccontextmanager
async def two_nodes(
    limits: actors.PeerLimits | None = None, **options: Any
) -> AsyncIterator[tuple[actors.Node, actors.Node]]:
    async with (
        actors.open_node(
            "a", listen="tcp://127.0.0.1:*", insecure=True, limits=limits, **options
        ) as a,
        actors.open_node("b", insecure=True, **options) as b,
    ):
        await b.connect(a.endpoints[0])
        yield a, b


def link_to(node: actors.Node, name: str) -> Any:
    cluster = runtime_of(node).cluster
    assert cluster is not None
    return cluster._links.find(name)


async def test_a_full_mailbox_does_not_stall_the_link() -> None:
    """A burst of tells to an actor whose mailbox is full: the link goes on
    reading (heartbeats, other actors' asks), the peer is not declared lost
    after its timeout, and every tell arrives, in order, once the actor moves."""
    GATES["slow"] = trio.Event()
    async with two_nodes(heartbeat=0.05, timeout=0.3) as (a, b):
        slow = await a.spawn(Slow, name="slow", mailbox_size=2)
        echo = await a.spawn(Echo)
        with trio.fail_after(TIMEOUT), current(b):
            for i in range(100):
                await slow.tell("put", i)
            # Before this fix a's link task waited for the mailbox here, so
            # the ask below hung and b was declared lost after 0.3 s.
            assert await echo.ask("echo", "through") == "through"
            backlog = runtime_of(a).cluster._backlog  # type: ignore[union-attr]
            assert backlog.size(link_to(a, "b")) > 0  # tells do wait there
            await trio.sleep(4 * 0.3)  # several timeouts pass: nobody is lost
            assert [p.name for p in a.peers] == ["b"]
            assert [p.name for p in b.peers] == ["a"]
            GATES["slow"].set()
            assert await slow.ask("taken") == list(range(100))  # after every tell


async def test_credit_makes_the_sender_wait_and_loses_nothing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With a window of 8, the sender of 200 tells waits for credit once 8
    are outstanding: the receiver never holds more than the window, and all
    200 arrive in order once the actor moves."""
    waited = trio.Event()
    real_wait = _flow.wait_for_credit

    async def spy(link: Any, timeout: float) -> None:
        waited.set()
        await real_wait(link, timeout)

    monkeypatch.setattr(_cluster, "wait_for_credit", spy)
    held: list[int] = []
    real_offer = _flow.Backlog.offer

    def offer(self: _flow.Backlog, link: Any, *call: Any) -> None:
        real_offer(self, link, *call)
        held.append(self.size(link))

    monkeypatch.setattr(_flow.Backlog, "offer", offer)
    GATES["slow"] = trio.Event()
    async with two_nodes(actors.PeerLimits(window=8)) as (a, b):
        slow = await a.spawn(Slow, name="slow", mailbox_size=2)
        done = trio.Event()

        async def send_all() -> None:
            with current(b):
                for i in range(200):
                    await slow.tell("put", i)
            done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            with trio.fail_after(TIMEOUT):
                await waited.wait()
                assert not done.is_set()
                GATES["slow"].set()
                await done.wait()
                with current(b):
                    assert await slow.ask("taken") == list(range(200))
        assert max(held) <= 8
        assert link_to(b, "a").window == 8  # as a announced it


async def test_a_peer_that_ignores_its_window_has_the_excess_refused(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raw DEALER sends 500 tells where its window is 8: a holds at most
    four windows of them, logs the rest as refused, and goes on serving."""
    GATES["slow"] = trio.Event()
    async with two_nodes(actors.PeerLimits(window=8)) as (a, b):
        await a.spawn(Slow, name="slow", mailbox_size=2)
        echo = await a.spawn(Echo)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            raw = ctx.socket(zmq.DEALER)
            raw.linger = 0
            raw.rcvtimeo = TIMEOUT * 1000  # a guard only
            raw.connect(a.endpoints[0])
            raw.send_multipart(wire.encode_envelope(wire.Hello(name="raw", epoch=1)))
            assert (await trio.to_thread.run_sync(raw.recv_multipart))[0].startswith(wire.WELCOME)
            payload = a.codec.encode(((0,), {}))
            for _ in range(500):
                raw.send_multipart(
                    wire.encode_envelope(wire.Call(actor="slow", method="put"), payload)
                )
            # Its last call is an ask: its answer comes once a read all 500.
            ask = wire.Call(actor="echo", method="echo", id=1)
            raw.send_multipart(wire.encode_envelope(ask, a.codec.encode((("last",), {}))))
            with trio.fail_after(TIMEOUT):
                while True:
                    env = wire.decode_envelope(await trio.to_thread.run_sync(raw.recv_multipart))
                    if env.kind == wire.REPLY:
                        break
            backlog = runtime_of(a).cluster._backlog  # type: ignore[union-attr]
            assert backlog.size(link_to(a, "raw")) == 4 * 8
            with trio.fail_after(TIMEOUT), current(b):
                assert await echo.ask("echo", 1) == 1
        finally:
            ctx.destroy(linger=0)
        assert "sent far more calls than the window" in caplog.text
        GATES["slow"].set()


async def test_asks_beyond_the_limit_are_refused_at_once() -> None:
    GATES["slow"] = trio.Event()
    async with two_nodes(actors.PeerLimits(asks=2)) as (a, b):
        slow = await a.spawn(Slow, name="slow")
        outcomes: list[str] = []

        async def ask() -> None:
            with current(b):
                try:
                    await slow.ask("put", 0)
                    outcomes.append("answered")
                except actors.ActorStoppedError as exc:
                    outcomes.append("refused" if "PeerLimits.asks" in str(exc) else repr(exc))
                    if outcomes.count("refused") == 2:
                        GATES["slow"].set()

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                for _ in range(4):
                    nursery.start_soon(ask)
        assert sorted(outcomes) == ["answered", "answered", "refused", "refused"]


async def test_monitors_beyond_the_limit_are_answered_not_running() -> None:
    async with two_nodes(actors.PeerLimits(monitors=2)) as (a, b):
        targets = [await a.spawn(Echo, name=f"t{i}") for i in range(3)]
        watcher = await b.spawn(Watcher)
        with trio.fail_after(TIMEOUT), current(b):
            await watcher.ask("watch", targets[0])
            await watcher.ask("watch", targets[1])
            async with trio.open_nursery() as nursery:
                nursery.start_soon(lambda: watcher.ask("watch", targets[2]))
                # The third is over the limit: answered at once, as not running...
                assert await next_down() == ("t2", "not running")
            assert await targets[2].ask("echo", 1) == 1  # ... though it runs
            async with trio.open_nursery() as nursery:
                nursery.start_soon(targets[0].stop)
                # The two within the limit are real monitors.
                assert await next_down() == ("t0", "stopped")
        monitors = runtime_of(a).cluster.monitors  # type: ignore[union-attr]
        assert monitors._from["b"] == {(watcher.name, "t1")}  # t0's went with its DOWN


class Stuck(actors.Actor):
    async def hang(self) -> None:
        await trio.sleep_forever()


async def test_aclose_is_bounded_by_shutdown_whatever_the_mailbox_holds() -> None:
    """An actor stuck in a handler with its mailbox full: closing the node
    kills it after its shutdown time, instead of waiting for mailbox room."""
    with trio.fail_after(TIMEOUT):
        async with actors.open_node() as node:
            stuck = await node.spawn(Stuck, mailbox_size=2, shutdown=0.1)
            for _ in range(3):  # one running, two queued: full
                await stuck.tell("hang")


async def test_a_handler_that_fails_costs_one_message_not_the_node(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a handler raises (here, a stand-in for a bug: the MONITOR
    handler fails), the link task logs it, drops that message and goes on."""

    async def broken(*args: Any) -> None:
        raise RuntimeError("a bug in a handler")

    async with two_nodes() as (a, b):
        echo = await a.spawn(Echo)
        watcher = await b.spawn(Watcher)
        cluster = runtime_of(a).cluster
        assert cluster is not None
        monkeypatch.setitem(cluster._handlers, wire.MONITOR, broken)
        with trio.fail_after(TIMEOUT), current(b):
            await watcher.ask("watch", echo)  # a's handler raises
            assert await echo.ask("echo", "still here") == "still here"
        assert [p.name for p in a.peers] == ["b"]
        assert "a 'monitor' message from" in caplog.text
        assert "a bug in a handler" in caplog.text


async def test_a_failure_feeding_a_mailbox_costs_those_calls_not_the_node(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    GATES["slow"] = trio.Event()
    async with two_nodes() as (a, b):
        slow = await a.spawn(Slow, name="slow", mailbox_size=2)
        echo = await a.spawn(Echo)
        cluster = runtime_of(a).cluster
        assert cluster is not None
        accepted = cluster._backlog._accepted

        bugs = [RuntimeError("a bug while feeding")]

        def broken(link: Any, rid: Any, reply: Any) -> None:
            if GATES["slow"].is_set() and bugs:  # the first call fed after the gate
                raise bugs.pop()
            accepted(link, rid, reply)

        monkeypatch.setattr(cluster._backlog, "_accepted", broken)
        with trio.fail_after(TIMEOUT), current(b):
            for i in range(5):
                await slow.tell("put", i)
            assert await echo.ask("echo", 1) == 1  # through, the tells queued behind slow
            assert cluster._backlog.size(link_to(a, "b")) > 0
            lost = trio.Event()

            class Spy(logging.Handler):
                def emit(self, record: logging.LogRecord) -> None:
                    if "were lost" in record.getMessage():
                        lost.set()

            spy = Spy()
            logging.getLogger("trimq.actors").addHandler(spy)
            try:
                GATES["slow"].set()
                await lost.wait()  # the feed task gave up on the rest
            finally:
                logging.getLogger("trimq.actors").removeHandler(spy)
            assert cluster._backlog.size(link_to(a, "b")) == 0
            assert await echo.ask("echo", 2) == 2
            taken = await slow.ask("taken")
            assert taken == list(range(len(taken)))  # in order, up to the bug
            assert len(taken) < 5  # the calls still queued then were lost with it
        assert "calls from node 'b' to actor 'slow' were lost" in caplog.text


async def test_a_forged_credit_touches_only_its_own_link() -> None:
    """A raw peer that read a's epoch from its WELCOME grants itself an absurd
    credit and announces an absurd window: a's accounting for it is clamped to
    what a sent it, and a's link to another node is untouched."""
    async with two_nodes(actors.PeerLimits(window=8)) as (a, b):
        echo = await a.spawn(Echo)
        with trio.fail_after(TIMEOUT), current(b):
            assert await echo.ask("echo", 1) == 1
        to_b = link_to(a, "b")
        before = (to_b.epoch, to_b.sent, to_b.granted, to_b.window)
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            raw = ctx.socket(zmq.DEALER)
            raw.linger = 0
            raw.rcvtimeo = TIMEOUT * 1000  # a guard only
            raw.connect(a.endpoints[0])
            raw.send_multipart(wire.encode_envelope(wire.Hello(name="raw", window=2**31)))
            welcome = wire.decode_envelope(await trio.to_thread.run_sync(raw.recv_multipart))
            epoch = welcome.head(wire.Welcome).epoch
            for forged in (
                wire.Credit(epoch=epoch, delivered=2**62),
                wire.Ping(epoch=epoch, delivered=2**62),
                wire.Credit(epoch=before[0], delivered=2**62),  # b's epoch, on raw's link
            ):
                raw.send_multipart(wire.encode_envelope(forged))
            ask = wire.Call(actor=echo.name, method="echo", id=1)
            raw.send_multipart(wire.encode_envelope(ask, a.codec.encode(((2,), {}))))
            with trio.fail_after(TIMEOUT):
                while True:  # its answer comes after a handled the forgeries
                    env = wire.decode_envelope(await trio.to_thread.run_sync(raw.recv_multipart))
                    if env.kind == wire.REPLY:
                        break
            to_raw = link_to(a, "raw")
            assert to_raw.granted <= to_raw.sent  # never more than a sent it
            assert to_raw.window == 2**31  # its own window, for a's calls to it only
            assert (to_b.epoch, to_b.sent, to_b.granted, to_b.window) == before
            with trio.fail_after(TIMEOUT), current(b):
                assert await echo.ask("echo", 3) == 3
        finally:
            ctx.destroy(linger=0)

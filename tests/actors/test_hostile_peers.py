"""Hostile peers on a live connection: what they send is refused, they
change nothing that is not theirs, and the node goes on serving.

Each attacker is a raw libzmq DEALER speaking the node's envelopes (over
CURVE with a key that has the ``ask`` right only, or insecure on loopback).
Each test ends with a real node's ask, answered.
"""

from __future__ import annotations

import contextlib
import itertools
import pickle
import random
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
import zmq

from trimq import actors
from trimq.actors import ChildSpec, Supervisor
from trimq.actors import _wire as wire
from trimq.actors._exit import ExitReason

from ._fixtures import Holder, Touch
from .conftest import actor_of, current, runtime_of

TIMEOUT = 10
CODEC = actors.DefaultCodec()


class Echo(actors.Actor):
    def echo(self, value: Any) -> Any:
        return value


class Watcher(actors.Actor):
    def on_start(self) -> None:
        self.downs: list[tuple[actors.ActorRef, str]] = []
        self.got_down = trio.Event()

    def watch(self, ref: actors.ActorRef) -> None:
        self.monitor(ref)

    def seen(self) -> list[tuple[actors.ActorRef, str]]:
        return self.downs

    def on_down(self, ref: actors.ActorRef, reason: ExitReason) -> None:
        self.downs.append((ref, reason.kind))
        self.got_down.set()


GATES: dict[str, trio.Event] = {}


class Slow(actors.Actor):
    """Its ``hold`` waits at the gate named after the actor, once started."""

    async def hold(self, value: Any) -> Any:
        GATES[self.ref.name + ".started"].set()
        await GATES[self.ref.name].wait()
        return value


# ---------------------------------------------------------------------- the raw peer


class RawPeer:
    """A libzmq DEALER that speaks envelopes by hand; every wait is guarded by rcvtimeo."""

    def __init__(
        self,
        ctx: zmq.Context[zmq.Socket[bytes]],
        endpoint: str,
        *,
        keys: tuple[bytes, bytes] | None = None,
        server_key: bytes | None = None,
    ) -> None:
        sock = ctx.socket(zmq.DEALER)
        sock.linger = 0
        sock.rcvtimeo = TIMEOUT * 1000  # a guard only: each wait is for an answer
        sock.sndhwm = 0  # bursts queue here instead of blocking the trio thread
        if keys is not None:
            sock.curve_publickey, sock.curve_secretkey = keys
            sock.curve_serverkey = server_key
        sock.connect(endpoint)
        self.sock = sock
        self._ids = itertools.count(10**6)
        #: Every envelope received that a wait skipped (pings, WHO, DOWN...).
        self.skipped: list[wire.Envelope] = []
        self.last_reply: wire.Envelope | None = None

    async def send(self, *messages: list[bytes]) -> None:
        def run() -> None:
            for frames in messages:
                self.sock.send_multipart(frames)

        await trio.to_thread.run_sync(run)

    async def send_env(
        self, header: wire.Header, payload: tuple[bytes, bytes] | None = None
    ) -> None:
        await self.send(wire.encode_envelope(header, payload))

    async def wait_for(self, wanted: Callable[[wire.Envelope], bool]) -> wire.Envelope:
        def run() -> wire.Envelope:
            while True:
                env = wire.decode_envelope(self.sock.recv_multipart())
                if wanted(env):
                    return env
                self.skipped.append(env)

        return await trio.to_thread.run_sync(run)

    async def reply_to(self, rid: int) -> wire.Reply:
        env = await self.wait_for(lambda e: e.kind == wire.REPLY and e.head(wire.Reply).id == rid)
        self.last_reply = env
        return env.head(wire.Reply)

    async def hello(self, name: str, **fields: Any) -> wire.Welcome:
        await self.send_env(wire.Hello(name=name, **fields))
        return (await self.wait_for(lambda e: e.kind == wire.WELCOME)).head(wire.Welcome)

    def next_id(self) -> int:
        return next(self._ids)

    async def ask(
        self, actor: str, method: str, *args: Any, payload: tuple[bytes, bytes] | None = None
    ) -> wire.Reply:
        """Send an ask (a CALL with an id) and wait for its REPLY."""
        rid = self.next_id()
        header = wire.Call(actor=actor, method=method, id=rid)
        await self.send_env(header, payload or CODEC.encode((args, {})))
        return await self.reply_to(rid)

    async def answer(self, actor: str, method: str, *args: Any) -> Any:
        """A valid ask's result: proof that the node still serves this connection."""
        reply = await self.ask(actor, method, *args)
        assert reply.ok, reply.message
        env = self.last_reply
        assert env is not None
        return None if env.tag is None else CODEC.decode(env.tag, env.data)


@contextlib.contextmanager
def zmq_context() -> Iterator[zmq.Context[zmq.Socket[bytes]]]:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    try:
        yield ctx
    finally:
        ctx.destroy(linger=0)


class Secure:
    """A CURVE node "a" with an Echo actor "echo"; a raw peer "raw" on it,
    named and welcomed, whose key has the ``ask`` right only; and the keys of
    a real node "b" that ``a`` allows (see :func:`served`)."""

    def __init__(
        self,
        a: actors.Node,
        a_pub: bytes,
        raw: RawPeer,
        raw_pub: bytes,
        b_keys: tuple[bytes, bytes],
    ) -> None:
        self.a = a
        self.a_pub = a_pub
        self.raw = raw
        self.raw_pub = raw_pub
        self.b_keys = b_keys

    async def served(self) -> None:
        """A real node connects to ``a`` now and has its ask answered."""
        async with actors.open_node("b", keys=self.b_keys) as b:
            with trio.fail_after(TIMEOUT):
                await b.connect(self.a.endpoints[0], key=self.a_pub)
                with current(b):
                    assert await actors.ActorRef("a", "echo").ask("echo", [1, "x"]) == [1, "x"]


@contextlib.asynccontextmanager
async def secure_node() -> AsyncIterator[Secure]:
    a_pub, a_sec = zmq.curve_keypair()
    raw_pub, raw_sec = zmq.curve_keypair()
    b_pub, b_sec = zmq.curve_keypair()
    allow = {raw_pub: ["ask"], b_pub: ["ask"]}
    async with actors.open_node(
        "a", listen="tcp://127.0.0.1:*", keys=(a_pub, a_sec), allow=allow
    ) as a:
        await a.spawn(Echo, name="echo")
        with zmq_context() as ctx:
            raw = RawPeer(ctx, a.endpoints[0], keys=(raw_pub, raw_sec), server_key=a_pub)
            with trio.fail_after(TIMEOUT):
                assert (await raw.hello("raw")).name == "a"
            yield Secure(a, a_pub, raw, raw_pub, (b_pub, b_sec))


async def insecure_served(a: actors.Node) -> None:
    """A real node connects to insecure ``a`` now and has its ask answered."""
    async with actors.open_node("b", insecure=True) as b:
        with trio.fail_after(TIMEOUT):
            await b.connect(a.endpoints[0])
            with current(b):
                assert await actors.ActorRef(a.name, "echo").ask("echo", [1, "x"]) == [1, "x"]


# ---------------------------------------------------------------------- 1. headers


def _nested_frozenset_pickle(levels: int) -> bytes:
    """A pickle of ``frozenset([x])`` where ``x = (x', x')`` nested ``levels``
    deep through memo references: ~7 bytes a level, but 2**levels tuples to
    hash when the frozenset is built (written by hand: Python itself cannot
    build the frozenset to pickle it)."""
    out = bytearray(b"\x80\x04)q\x00")  # PROTO 4, EMPTY_TUPLE, BINPUT 0
    for i in range(levels):  # BINGET i, BINGET i, TUPLE2, BINPUT i+1
        out += b"h" + bytes([i]) + b"h" + bytes([i]) + b"\x86q" + bytes([i + 1])
    out += b"(h" + bytes([levels]) + b"\x91."  # MARK, BINGET, FROZENSET, STOP
    return bytes(out)


OLD_PICKLE_BOMBS = {
    "frozenset-of-shared-tuples": _nested_frozenset_pickle(40),
    # LONG_BINPUT at index 2**26: an old memo list grown to 64 Mi slots.
    "long-binput-2**26": b"\x80\x05N" + b"r" + (2**26).to_bytes(4, "little") + b".",
    # EXT2: the copyreg extension registry (code chosen by the sender).
    "ext2": b"\x80\x02\x82\x01\x00.",
}


@pytest.mark.parametrize("bomb", OLD_PICKLE_BOMBS.values(), ids=OLD_PICKLE_BOMBS.keys())
async def test_a_pickle_header_from_an_ask_only_peer_is_dropped(
    bomb: bytes, caplog: pytest.LogCaptureFixture
) -> None:
    """The header of a CALL (with a payload) and of a PING is a pickle bomb:
    both are dropped as malformed headers, nothing else happens, and the
    same connection's next ask is answered."""
    async with secure_node() as s:
        assert len(bomb) < 300
        call = [wire.CALL + b"\0" + b"p" + bomb, CODEC.encode((("x",), {}))[1]]
        ping = [wire.PING + b"\0" + bomb]
        with trio.fail_after(TIMEOUT):
            await s.raw.send(call, ping)
            assert await s.raw.answer("echo", "echo", "after") == "after"
        # Nothing answered the bombs: the reply waited for was the next
        # message but for pings.
        assert all(env.kind == wire.PING for env in s.raw.skipped)
        dropped = [
            r.getMessage() for r in caplog.records if "dropped a message from" in r.getMessage()
        ]
        key = s.raw_pub.decode()
        assert len(dropped) == 2
        assert all(key in text for text in dropped)
        assert "bad call header" in dropped[0]
        assert "bad ping header" in dropped[1]
        assert "raw" in [p.name for p in s.a.peers]
        await s.served()


# ---------------------------------------------------------------------- 2. payloads


def _ext_head(code: int, size: int) -> bytes:
    fixed = {1: 0xD4, 2: 0xD5, 4: 0xD6, 8: 0xD7, 16: 0xD8}
    if size in fixed:
        return bytes([fixed[size], code])
    if size < 2**8:
        return bytes([0xC7, size, code])
    if size < 2**16:
        return b"\xc8" + size.to_bytes(2, "big") + bytes([code])
    return b"\xc9" + size.to_bytes(4, "big") + bytes([code])


def _ext(code: int, data: bytes) -> bytes:
    return _ext_head(code, len(data)) + data


def _array_head(count: int) -> bytes:
    if count < 16:
        return bytes([0x90 | count])
    if count < 2**16:
        return b"\xdc" + count.to_bytes(2, "big")
    return b"\xdd" + count.to_bytes(4, "big")


def _array(items: list[bytes]) -> bytes:
    return _array_head(len(items)) + b"".join(items)


def _int(n: int) -> bytes:
    if -(2**63) <= n < 2**64:
        return msgspec.msgpack.encode(n)
    return _ext(6, n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True))


TUPLE, SET, DICT = 1, 2, 4
NIL, EMPTY_MAP = b"\xc0", b"\x80"


def _as_arguments(arg: bytes) -> bytes:
    """A call's payload ``((arg,), {})`` around the encoded ``arg``."""
    return _ext(TUPLE, _array([_ext(TUPLE, _array([arg])), EMPTY_MAP]))


def _deep_tuples_in_a_set(depth: int) -> bytes:
    """``{((...((),)...),)}``: tuples nested ``depth`` deep, in a set. Built
    from the inside out by lengths alone (each level is a prefix)."""
    core = _ext(TUPLE, _array([]))
    heads: list[bytes] = []
    size = len(core)
    for _ in range(depth):
        head = _ext_head(TUPLE, 1 + size) + _array_head(1)
        heads.append(head)
        size += len(head)
    return _ext(SET, _array([b"".join(reversed(heads)) + core]))


def _colliding_keys(count: int) -> list[bytes]:
    # hash(k * (2**61 - 1)) == 0 for every int k: CPython hashes ints modulo 2**61 - 1.
    return [_int(k * (2**61 - 1)) for k in range(1, count + 1)]


def _native_map_of_colliding_ints(count: int) -> bytes:
    keys = _colliding_keys(count)
    return b"\xdf" + count.to_bytes(4, "big") + b"".join(k + NIL for k in keys)


def _dict_ext_of_colliding_ints(count: int) -> bytes:
    flat = [x for k in _colliding_keys(count) for x in (k, NIL)]
    return _ext(DICT, _array(flat))


HOSTILE_PLAIN = {
    "300000-deep-tuples-in-a-set": (
        lambda: _as_arguments(_deep_tuples_in_a_set(300_000)),
        "nested deeper than 64 levels",
    ),
    "native-map-of-80000-colliding-ints": (
        lambda: _as_arguments(_native_map_of_colliding_ints(80_000)),
        "a map key that is not a str",
    ),
    "dict-ext-of-80000-colliding-ints": (
        lambda: _as_arguments(_dict_ext_of_colliding_ints(80_000)),
        "a hash-flooding attempt",
    ),
    "1MiB-of-empty-maps": (
        lambda: _as_arguments(b"\xdd" + (2**20).to_bytes(4, "big") + EMPTY_MAP * 2**20),
        "over the budget",
    ),
    "array32-claiming-2**32-1-items": (
        lambda: b"\xdd\xff\xff\xff\xff",
        "declares 4294967295 items but only 0 bytes remain",
    ),
    "old-pickle-under-tag-p": (
        lambda: pickle.dumps((("x",), {}), protocol=5),
        "cannot decode plain data",
    ),
}


@pytest.mark.parametrize(("make", "why"), HOSTILE_PLAIN.values(), ids=HOSTILE_PLAIN.keys())
async def test_hostile_plain_data_from_an_ask_only_peer_is_answered_with_its_refusal(
    make: Callable[[], bytes], why: str
) -> None:
    data = make()
    async with secure_node() as s:
        with trio.fail_after(TIMEOUT):
            reply = await s.raw.ask("echo", "echo", payload=(b"p", data))
            assert not reply.ok
            assert reply.type.endswith(".CodecError")
            assert "plain data" in reply.message
            assert why in reply.message
            assert await s.raw.answer("echo", "echo", "after") == "after"
        await s.served()


async def test_code_from_an_ask_only_peer_is_refused_unread(tmp_path: Path) -> None:
    marker = tmp_path / "unpickled"
    tag, data = CODEC.encode(((Touch(str(marker)),), {}))
    assert tag == b"c"
    pickle.loads(data)  # decoded, it does create the file
    assert marker.exists()
    marker.unlink()
    async with secure_node() as s:
        with trio.fail_after(TIMEOUT):
            reply = await s.raw.ask("echo", "echo", payload=(tag, data))
            assert not reply.ok
            assert reply.type.endswith(".CodecError")
            assert "refusing to unpickle code" in reply.message
            assert await s.raw.answer("echo", "echo", "after") == "after"
        await s.served()
    assert not marker.exists()


# ---------------------------------------------------------------------- 3. impersonation


class Trio:
    """Real nodes "hub" and "w1" (insecure, loopback; hub connected to w1),
    an Echo actor "echo" on each, and "mallory": raw DEALERs to both, named
    and welcomed."""

    def __init__(self, hub: actors.Node, w1: actors.Node, at_hub: RawPeer, at_w1: RawPeer) -> None:
        self.hub = hub
        self.w1 = w1
        self.at_hub = at_hub
        self.at_w1 = at_w1

    async def both_served(self) -> None:
        """Each real node has its ask of the other answered."""
        with trio.fail_after(TIMEOUT):
            with current(self.hub):
                assert await actors.ActorRef("w1", "echo").ask("echo", "to w1") == "to w1"
            with current(self.w1):
                assert await actors.ActorRef("hub", "echo").ask("echo", "to hub") == "to hub"

    async def settled(self) -> None:
        """Each node handled everything mallory sent it, and the tasks that
        started (notices posted, verdicts carried out) ran until they wait."""
        with trio.fail_after(TIMEOUT):
            assert await self.at_hub.answer("echo", "echo", "sync") == "sync"
            assert await self.at_w1.answer("echo", "echo", "sync") == "sync"
            await trio.testing.wait_all_tasks_blocked()


@contextlib.asynccontextmanager
async def hub_and_w1() -> AsyncIterator[Trio]:
    async with (
        actors.open_node("hub", listen="tcp://127.0.0.1:*", insecure=True) as hub,
        actors.open_node("w1", listen="tcp://127.0.0.1:*", insecure=True) as w1,
    ):
        await hub.spawn(Echo, name="echo")
        await w1.spawn(Echo, name="echo")
        await hub.connect(w1.endpoints[0])
        with zmq_context() as ctx:
            at_hub = RawPeer(ctx, hub.endpoints[0])
            at_w1 = RawPeer(ctx, w1.endpoints[0])
            with trio.fail_after(TIMEOUT):
                assert (await at_hub.hello("mallory")).name == "hub"
                assert (await at_w1.hello("mallory")).name == "w1"
            yield Trio(hub, w1, at_hub, at_w1)


async def _watched_from_hub(t: Trio) -> tuple[actors.ActorRef, actors.ActorRef, Watcher]:
    """A Holder "target" on w1, watched by the Watcher "watcher" on hub, once
    w1 has the monitor."""
    target = await t.w1.spawn(Holder, name="target")
    with current(t.hub):
        watcher = await t.hub.spawn(Watcher, name="watcher")
        await watcher.ask("watch", target)
        # The MONITOR went before this ask on hub's one connection to w1.
        assert await target.ask("put", "monitored") == 1
    return target, watcher, actor_of(t.hub, watcher, Watcher)


async def test_a_forged_down_does_not_reach_the_watcher() -> None:
    async with hub_and_w1() as t:
        target, watcher, seen = await _watched_from_hub(t)
        await t.at_hub.send_env(
            wire.Down(actor="target", watcher="watcher", kind="crashed", error="forged")
        )
        await t.settled()
        with trio.fail_after(TIMEOUT), current(t.hub):
            assert await watcher.ask("seen") == []
            await target.stop()  # the real end, as w1 reports it
            await seen.got_down.wait()
        assert seen.downs == [(target, "stopped")]
        await t.both_served()


async def _supervised_on_w1(t: Trio) -> tuple[actors.ActorRef, actors.ActorRef]:
    """A Supervisor "sup" on hub with its Holder child "job" placed on w1."""
    with trio.fail_after(TIMEOUT), current(t.hub):
        sup = await t.hub.spawn(Supervisor, [ChildSpec(Holder, name="job", on="w1")], name="sup")
        (child,) = await sup.ask("children")
        assert child == actors.ActorRef("w1", "job")
        assert await child.ask("put", 1) == 1
    return sup, child


async def test_a_forged_child_exit_restarts_nothing() -> None:
    async with hub_and_w1() as t:
        sup, child = await _supervised_on_w1(t)
        await t.at_hub.send_env(
            wire.ChildExit(actor="job", supervisor="sup", kind="crashed", error="forged")
        )
        await t.settled()
        with trio.fail_after(TIMEOUT), current(t.hub):
            assert await sup.ask("children") == [child]
            assert await child.ask("put", 2) == 2  # the same incarnation: not restarted
        assert [ref.name for ref in t.w1.actors].count("job") == 1
        await t.both_served()


async def test_a_forged_cancel_leaves_another_connections_ask_running() -> None:
    """hub's ask of w1's Slow actor is in flight; mallory cancels every id hub
    has pending (and the first hundred) on its own connection to w1."""
    GATES["slow"], GATES["slow.started"] = trio.Event(), trio.Event()
    async with hub_and_w1() as t:
        slow = await t.w1.spawn(Slow, name="slow")
        result: list[Any] = []

        async def real_ask() -> None:
            with current(t.hub):
                result.append(await slow.ask("hold", "real"))

        with trio.fail_after(TIMEOUT):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(real_ask)
                await GATES["slow.started"].wait()
                pending = set(runtime_of(t.hub).cluster._calls._pending)  # type: ignore[union-attr]
                assert pending
                ids = sorted(pending | set(range(1, 101)))
                await t.at_w1.send(*(wire.encode_envelope(wire.Cancel(id=i)) for i in ids))
                await t.settled()
                GATES["slow"].set()
        assert result == ["real"]
        await t.both_served()


@pytest.mark.parametrize("verdict", ["suspend", "restart", "terminate"])
async def test_only_a_childs_supervisor_node_may_give_it_a_verdict(verdict: str) -> None:
    async with hub_and_w1() as t:
        _, child = await _supervised_on_w1(t)
        with trio.fail_after(TIMEOUT):
            rid = t.at_w1.next_id()
            await t.at_w1.send_env(wire.Supervise(id=rid, actor="job", verdict=verdict))  # type: ignore[arg-type]
            reply = await t.at_w1.reply_to(rid)
        assert not reply.ok
        assert reply.type.endswith(".ActorNotFoundError")
        assert "node 'mallory' supervises no 'job' here" in reply.message
        with trio.fail_after(TIMEOUT), current(t.hub):
            assert await child.ask("put", 2) == 2  # still running, never restarted
        await t.both_served()


async def test_stop_monitor_and_demonitor_by_another_node_touch_nothing_of_hubs() -> None:
    """mallory asks hub to stop w1's actor (hub has none of that name), and
    removes and sets monitors on w1 (and hub) under the name of hub's
    watcher: they are its own watcher's, not hub's. hub's watcher still gets
    its DOWN, once; mallory gets the one of its own monitor."""
    async with hub_and_w1() as t:
        target, watcher, seen = await _watched_from_hub(t)
        with trio.fail_after(TIMEOUT):
            rid = t.at_hub.next_id()
            await t.at_hub.send_env(wire.Stop(id=rid, actor="target"))
            reply = await t.at_hub.reply_to(rid)
            assert not reply.ok
            assert reply.type.endswith(".ActorNotFoundError")
            await t.at_w1.send_env(wire.Demonitor(actor="target", watcher="watcher"))
            await t.at_w1.send_env(wire.Monitor(actor="target", watcher="watcher"))
            await t.at_hub.send_env(wire.Demonitor(actor="target", watcher="watcher"))
        await t.settled()
        with trio.fail_after(TIMEOUT), current(t.hub):
            assert await target.ask("put", "still here") == 2
            assert await watcher.ask("seen") == []
            await target.stop()
            await seen.got_down.wait()
        assert seen.downs == [(target, "stopped")]
        # mallory's monitor was its own: its DOWN came to mallory's connection.
        with trio.fail_after(TIMEOUT):
            down = await t.at_w1.wait_for(lambda e: e.kind == wire.DOWN)
        assert down.head(wire.Down) == wire.Down(actor="target", watcher="watcher", kind="stopped")
        await t.both_served()


# ---------------------------------------------------------------------- 4. one name


async def test_a_connection_keeps_its_first_name_among_1500(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """1 500 HELLOs with as many names, each announcing an events endpoint, on
    one connection: the first names it, every later one is refused, and the
    node holds one link name and one events SUB for it."""
    async with actors.open_node("hub", listen="tcp://127.0.0.1:*", insecure=True) as hub:
        await hub.spawn(Echo, name="echo")
        events = runtime_of(hub).cluster.events  # type: ignore[union-attr]
        announced = events.endpoints[0]
        with zmq_context() as ctx:
            raw = RawPeer(ctx, hub.endpoints[0])
            hellos = [
                wire.encode_envelope(wire.Hello(name=f"n{i}", events=[announced]))
                for i in range(1500)
            ]
            with trio.fail_after(TIMEOUT):
                await raw.send(*hellos)
                # Its answer comes after the node read every HELLO.
                assert await raw.answer("echo", "echo", "after") == "after"
            welcomes = [env for env in raw.skipped if env.kind == wire.WELCOME]
            assert len(welcomes) == 1
            assert [p.name for p in hub.peers] == ["n0"]
            assert list(events._subs) == ["n0"]
            refused = [
                r.getMessage()
                for r in caplog.records
                if "its connection is already node 'n0'" in r.getMessage()
            ]
            assert len(refused) == 1499
            assert "calling itself 'n1499'" in refused[-1]
            await insecure_served(hub)


# ---------------------------------------------------------------------- 5. noise


def _noise(rng: random.Random) -> list[bytes]:
    """One message of garbage: random frames, or a kind (known or not) and
    random bytes where its header goes."""
    shape = rng.randrange(4)
    if shape == 0:  # anything at all, zero to four frames' worth
        return [rng.randbytes(rng.randrange(40)) for _ in range(rng.randrange(1, 5))]
    kind = rng.choice([*sorted(wire.KINDS), b"frobnicate", b"CALL", b""])
    if shape == 1:  # a kind and a random header
        return [kind + b"\0" + rng.randbytes(rng.randrange(40))]
    if shape == 2:  # a kind, a tag (maybe not a letter) and a random header and payload
        tag = bytes([rng.randrange(256)])
        return [kind + b"\0" + tag + rng.randbytes(rng.randrange(40)), rng.randbytes(50)]
    # a header of the right shape with random values (msgpack of random fields)
    fields = {
        rng.choice(["id", "actor", "method", "name", "epoch", "x"]): rng.choice(
            [0, -1, 2**63, "echo", b"\xff", None, [1] * 3, 1.5]
        )
        for _ in range(rng.randrange(4))
    }
    return [kind + b"\0" + msgspec.msgpack.encode(fields)]


async def test_random_frames_on_a_live_connection_change_nothing() -> None:
    rng = random.Random(20240611)
    async with actors.open_node("hub", listen="tcp://127.0.0.1:*", insecure=True) as hub:
        await hub.spawn(Echo, name="echo")
        with zmq_context() as ctx:
            raw = RawPeer(ctx, hub.endpoints[0])
            with trio.fail_after(TIMEOUT):
                await raw.hello("noisy")
                messages: list[list[bytes]] = []
                for i in range(200):
                    messages.append(_noise(rng))
                    if i % 10 == 9:
                        messages.append(wire.encode_envelope(wire.Ping()))
                await raw.send(*messages)
                assert await raw.answer("echo", "echo", "after") == "after"
            assert "noisy" in [p.name for p in hub.peers]
            await insecure_served(hub)

"""Secure by default: CURVE between nodes, the allow-list, loopback-only insecure mode."""

from __future__ import annotations

import ast
import os
import pickle
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing
import zmq

import trimq
from trimq import actors
from trimq.actors import _wire as wire
from trimq.actors._security import NodeSecurity
from trimq.zmtp import curve_key

from . import _fixtures
from ._fixtures import Touch
from .conftest import current

TIMEOUT = 10


class Echo(actors.Actor):
    def echo(self, value: Any) -> Any:
        return value


def keypair() -> tuple[bytes, bytes]:
    return trimq.curve_keypair()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"listen": "tcp://0.0.0.0:*"}, "without CURVE keys"),
        ({"listen": "tcp://0.0.0.0:*", "insecure": True}, "loopback and ipc endpoints only"),
        ({"listen": "tcp://127.0.0.1:*"}, "pass insecure=True"),
        ({"insecure": True, "keys": keypair()}, "choose one"),
        ({"allow": [keypair()[0]]}, "allow= needs keys"),
        ({"keys": (keypair()[0], keypair()[1])}, "does not match"),
    ],
)
async def test_unsafe_or_inconsistent_settings_are_refused(
    kwargs: dict[str, Any], match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        async with actors.open_node(**kwargs):
            pass


async def test_connecting_needs_keys_off_loopback_and_the_peers_key() -> None:
    async with actors.open_node(insecure=True) as node:
        with pytest.raises(ValueError, match="without CURVE keys"):
            await node.connect("tcp://10.1.2.3:7000")
    async with actors.open_node(keys=keypair()) as node:
        with pytest.raises(ValueError, match="needs the node's public key"):
            await node.connect("tcp://127.0.0.1:7000")


async def test_curve_nodes_that_allow_each_other_work_together() -> None:
    a_pub, a_sec = keypair()
    b_pub, b_sec = keypair()
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", keys=(a_pub, a_sec), allow=[b_pub]) as a,
        actors.open_node("b", keys=(b_pub, b_sec)) as b,
    ):
        with trio.fail_after(TIMEOUT):
            await b.connect(a.endpoints[0], key=a_pub)
            ref = await b.spawn(Echo, on="a")  # code travels: both sides trust
            assert await ref.ask("echo", {"x": [1, 2]}) == {"x": [1, 2]}
            back = await a.spawn(Echo, on="b")
            with current(a):  # a asks its ref to b's actor itself
                assert await back.ask("echo", b"raw") == b"raw"


async def test_a_node_with_a_key_not_allowed_gets_nothing(tmp_path: Path) -> None:
    a_pub, a_sec = keypair()
    intruder = keypair()
    async with actors.open_node(
        "a",
        listen="tcp://127.0.0.1:*",
        keys=(a_pub, a_sec),
        allow=[keypair()[0]],
    ) as a:
        async with actors.open_node("intruder", keys=intruder) as bad:
            with pytest.raises(ConnectionRefusedError, match="refused this node's key"):
                await bad.connect(a.endpoints[0], key=a_pub)
            assert bad.peers == []
        assert a.peers == []
        assert a.actors == []


async def test_raw_libzmq_intruders_are_refused_before_any_payload_is_read(tmp_path: Path) -> None:
    """A NULL client, and a CURVE client with an unknown key, each send a spawn
    whose payload would create a file if unpickled; neither gets through the
    handshake, while an allowed node does."""
    a_pub, a_sec = keypair()
    ok_pub, ok_sec = keypair()
    marker = tmp_path / "pwned"
    evil = wire.encode_envelope(wire.Spawn(id=1), (b"c", pickle.dumps(Touch(str(marker)))))
    async with actors.open_node(
        "a", listen="tcp://127.0.0.1:*", keys=(a_pub, a_sec), allow=[ok_pub]
    ) as a:
        ctx = zmq.Context()
        try:
            null = ctx.socket(zmq.DEALER)
            curve = ctx.socket(zmq.DEALER)
            stranger_pub, stranger_sec = keypair()
            curve.curve_publickey, curve.curve_secretkey = stranger_pub, stranger_sec
            curve.curve_serverkey = a_pub
            for sock in (null, curve):
                sock.linger = 0
                sock.connect(a.endpoints[0])
                sock.send_multipart(evil)
            # The allowed node's round trip proves the node had time to read
            # whatever reached it.
            async with actors.open_node("ok", keys=(ok_pub, ok_sec)) as ok:
                await ok.connect(a.endpoints[0], key=a_pub)
                ref = await ok.spawn(Echo, on="a")
                assert await ref.ask("echo", 1) == 1
            for sock in (null, curve):
                assert sock.poll(100) == 0  # no answer: no handshake
        finally:
            ctx.destroy(linger=0)
        assert not marker.exists()
        assert [ref.name for ref in a.actors] == ["Echo-1"]


def _peer(mechanism: str, key: bytes | None, address: str = "10.0.0.5:4000") -> trimq.Peer:
    transport = "tcp"
    return trimq.Peer(transport, address=address, mechanism=mechanism, public_key=key)


def test_trust_is_decided_by_the_proven_key_or_loopback() -> None:
    allowed_pub, _ = keypair()
    other_pub, _ = keypair()
    secure = NodeSecurity.make(keypair(), [allowed_pub], insecure=False)
    assert secure.trusts(_peer("CURVE", curve_key(allowed_pub)))
    assert not secure.trusts(_peer("CURVE", curve_key(other_pub)))
    assert not secure.trusts(_peer("NULL", None))
    assert not secure.trusts(None)
    insecure = NodeSecurity.make(None, [], insecure=True)
    assert insecure.trusts(_peer("NULL", None, "127.0.0.1:5555"))
    assert insecure.trusts(_peer("NULL", None, "[::1]:5555"))
    assert not insecure.trusts(_peer("NULL", None, "10.0.0.5:5555"))


def test_code_from_an_untrusted_peer_is_never_unpickled(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"
    codec = actors.DefaultCodec()
    tag, data = codec.encode(Touch(str(marker)))
    assert tag == b"c"
    secure = NodeSecurity.make(keypair(), [], insecure=False)
    stranger = _peer("CURVE", curve_key(keypair()[0]))
    with pytest.raises(actors.CodecError, match="refusing to unpickle code"):
        codec.decode(tag, data, allow_code=secure.trusts(stranger))
    assert not marker.exists()
    # Plain data from the same peer is fine: it cannot name code.
    tag, data = codec.encode({"n": 1})
    assert codec.decode(tag, data, allow_code=secure.trusts(stranger)) == {"n": 1}
    assert os.path.exists(tmp_path)


class Holder(_fixtures.Holder):
    def fail(self) -> None:
        raise KeyError("from a")


class Collector(actors.Actor):
    def __init__(self, prefix: str, seen: list[tuple[str, Any]]) -> None:
        self.prefix = prefix
        self.seen = seen

    async def on_start(self) -> None:
        await self.subscribe(self.prefix)

    def on_event(self, topic: str, event: Any) -> None:
        self.seen.append((topic, event))


async def test_events_need_the_publish_right_also_from_a_node_that_only_connects(
    caplog: pytest.LogCaptureFixture,
) -> None:
    # b has no events PUB, so it sends its events over its link: a refuses
    # them, as it would refuse to subscribe to b's PUB.
    a_pub, a_sec = keypair()
    b_pub, b_sec = keypair()
    seen: list[tuple[str, Any]] = []
    async with (
        actors.open_node(
            "a", listen="tcp://127.0.0.1:*", keys=(a_pub, a_sec), allow={b_pub: ["ask"]}
        ) as a,
        actors.open_node("b", keys=(b_pub, b_sec)) as b,
    ):
        await a.spawn(Collector, "room.", seen)
        echo = await a.spawn(Echo)
        await b.connect(a.endpoints[0], key=a_pub)
        with trio.fail_after(TIMEOUT):
            for i in range(3):
                await b.publish("room.news", i)
                await echo.ask("echo", i)  # after the event on the link
    assert seen == []
    assert "refused a 'event' message from node 'b'" in caplog.text
    assert "lacks the 'publish' right" in caplog.text


async def test_rights_decide_what_an_allowed_node_may_do(tmp_path: Path) -> None:
    """b may only ask with plain data: its spawns are refused, an object it
    sends is never unpickled, and it still gets a's errors (as ActorError)."""
    a_pub, a_sec = keypair()
    b_pub, b_sec = keypair()
    marker = tmp_path / "pwned"
    async with (
        actors.open_node(
            "a", listen="tcp://127.0.0.1:*", keys=(a_pub, a_sec), allow={b_pub: ["ask"]}
        ) as a,
        actors.open_node("b", keys=(b_pub, b_sec)) as b,
    ):
        await b.connect(a.endpoints[0], key=a_pub)
        holder = await a.spawn(Holder, name="holder")
        assert await holder.ask("put", {"plain": [1, 2.5, "x", b"y"]}) == 1
        with pytest.raises(PermissionError, match="lacks the 'spawn' right"):
            await b.spawn(Holder, on="a")
        with pytest.raises(actors.CodecError, match="refusing to unpickle code"):
            await holder.ask("put", Touch(str(marker)))
        assert not marker.exists()
        assert await holder.ask("put", "still works") == 2
        # a's reply carrying an exception object is code too: b trusts a fully
        # (it connected by key), so it gets the KeyError itself.
        with pytest.raises(KeyError, match="from a"):
            await holder.ask("fail")
        await trio.testing.wait_all_tasks_blocked()  # the crashed actor's task ends
        assert [ref.name for ref in a.actors] == []  # the crash ended it
        # The other way: b's error reaches a, which does not take code from b,
        # so it gets an ActorError naming the type, with b's traceback.
        on_b = await b.spawn(Holder, name="on-b")
        with pytest.raises(actors.ActorError, match="from a") as caught, current(a):
            await on_b.ask("fail")
        assert caught.value.type_name == "builtins.KeyError"
        assert "in fail" in caught.value.traceback_text


@pytest.mark.parametrize(
    ("rights", "match"),
    [(["fly"], "unknown rights"), (["spawn"], "needs the code right")],
)
def test_bad_rights_are_refused(rights: list[str], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        NodeSecurity.make(keypair(), {keypair()[0]: rights}, insecure=False)


async def test_an_insecure_node_refuses_a_key_it_cannot_check() -> None:
    async with actors.open_node(insecure=True) as node:
        with pytest.raises(ValueError, match="insecure node"):
            await node.connect("tcp://127.0.0.1:7000", key=keypair()[0])


def test_payloads_from_other_nodes_are_decoded_in_one_place() -> None:
    # The structural rule: only NodeSecurity.decode chooses allow_code, from
    # what the peer's connection proved. A call elsewhere fails this test.
    package = Path(actors.__file__).parent
    callers = []
    for path in sorted(package.parent.rglob("*.py")):
        tree = ast.parse(path.read_text(), str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Call) and any(k.arg == "allow_code" for k in node.keywords):
                callers.append(f"{path.relative_to(package.parent)}:{node.lineno}")
    assert len(callers) == 1
    assert callers[0].startswith("actors/_security.py:")


def test_an_insecure_node_trusts_ipc_peers_of_its_own_user_only() -> None:
    # On ipc anyone who can reach the socket file can connect: the kernel's
    # word on the peer's user (SO_PEERCRED) is what an insecure node trusts.
    insecure = NodeSecurity(insecure=True)
    me = os.geteuid()
    for right in ("ask", "code", "spawn"):
        assert insecure.may(trimq.Peer("ipc", "ipc:///tmp/n.sock", uid=me), right)
        assert not insecure.may(trimq.Peer("ipc", "ipc:///tmp/n.sock", uid=me + 1), right)
        # A platform (or a failed getsockopt) that cannot tell: no rights.
        assert not insecure.may(trimq.Peer("ipc", "ipc:///tmp/n.sock"), right)
    # inproc is this process; loopback tcp cannot be bound to a user.
    assert insecure.may(trimq.Peer("inproc"), "code")
    assert insecure.may(trimq.Peer("tcp", "127.0.0.1:5555"), "code")
    assert insecure.may(trimq.Peer("tcp", "[::1]:5555"), "code")
    assert not insecure.may(trimq.Peer("tcp", "10.0.0.5:5555"), "code")
    # A secure node goes by the CURVE key only, whoever the kernel says the peer is.
    public, secret = keypair()
    secure = NodeSecurity.make((public, secret), [], insecure=False)
    assert not secure.may(trimq.Peer("ipc", "ipc:///tmp/n.sock", uid=me), "ask")


async def test_an_insecure_node_gives_its_own_user_rights_over_ipc(tmp_path: Path) -> None:
    # End to end: a real ipc connection carries the peer's uid into may().
    endpoint = f"ipc://{tmp_path / 'node.sock'}"
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PULL, linger=0)
            await server.bind(endpoint)
            client = ctx.socket(trimq.PUSH, linger=0)
            await client.connect(endpoint)
            await client.send(b"hello")
            peer = (await server.recv_message()).peer
    assert peer is not None
    assert peer.uid == os.geteuid()
    assert NodeSecurity(insecure=True).may(peer, "code")
    assert not NodeSecurity(insecure=True).may(
        trimq.Peer("ipc", peer.address, uid=0 if peer.uid else 1), "code"
    )


# Drop to nobody before libzmq's I/O thread exists, so that it connects as nobody.
_CONNECT_AS_NOBODY = """
import os, sys
import zmq

os.setgroups([])
os.setgid(65534)
os.setuid(65534)
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.connect(sys.argv[1])
sock.send(b"from nobody")
sock.close(linger=5000)
ctx.term()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
async def test_an_insecure_node_gives_another_local_user_nothing_over_ipc() -> None:
    # Another user who can reach the socket (here: an abstract name, which has
    # no permissions at all) connects; the kernel says who it is.
    import sys

    from trimq.actors._security import RIGHTS

    endpoint = f"ipc://@trimq-node-security-{os.getpid()}"
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PULL, linger=0)
            await server.bind(endpoint)
            command = [sys.executable, "-c", _CONNECT_AS_NOBODY, endpoint]
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trio.run_process, command)
                peer = (await server.recv_message()).peer
    assert peer is not None
    assert peer.uid == 65534
    insecure = NodeSecurity(insecure=True)
    assert not any(insecure.may(peer, right) for right in RIGHTS)

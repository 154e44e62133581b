"""ipc peers carry the kernel's word on who they are (SO_PEERCRED): pid, uid, gid.

Both ends of an ipc connection read the other's credentials once, when the
connection is made: the accepting side learns the connecting process, the
connecting side the process that listens. tcp and inproc peers have none.
"""

from __future__ import annotations

import os
import socket
import sys
import tempfile
import uuid
from pathlib import Path

import pytest
import trio
import trio.testing
import zmq

import trimq
from trimq.transport import peer_credentials

TIMEOUT = 10
NOBODY = 65534

pytestmark = pytest.mark.skipif(
    not hasattr(socket, "SO_PEERCRED"), reason="the platform has no SO_PEERCRED"
)


def _is_us(peer: trimq.Peer | None) -> None:
    assert peer is not None
    assert peer.transport == "ipc"
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.geteuid(), os.getegid())


async def test_both_ends_of_a_trimq_ipc_connection_see_the_other(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PAIR, linger=0)
            endpoint = await server.bind(f"ipc://{tmp_path / 'pair.sock'}")
            client = ctx.socket(trimq.PAIR, linger=0)
            await client.connect(endpoint)

            await client.send(b"to the accepting side")
            accepted = await server.recv_message()
            assert accepted.frames == [b"to the accepting side"]
            _is_us(accepted.peer)

            await server.send(b"to the connecting side")
            connected = await client.recv_message()
            _is_us(connected.peer)


@pytest.mark.parametrize("trimq_binds", [True, False], ids=["trimq-binds", "pyzmq-binds"])
async def test_a_pyzmq_ipc_peer_has_its_credentials(tmp_path: Path, trimq_binds: bool) -> None:
    address = f"ipc://{tmp_path / 'push.sock'}"
    zctx = zmq.Context()
    push = zctx.socket(zmq.PUSH)
    try:
        with trio.fail_after(TIMEOUT):
            async with trimq.Context() as ctx:
                pull = ctx.socket(trimq.PULL, linger=0)
                if trimq_binds:
                    push.connect(await pull.bind(address))
                else:
                    push.bind(address)
                    await pull.connect(address)
                # pyzmq's send blocks until the PUSH has a peer: keep it off the trio thread.
                await trio.to_thread.run_sync(push.send, b"from libzmq")
                msg = await pull.recv_message()
                assert msg.frames == [b"from libzmq"]
                _is_us(msg.peer)  # libzmq runs in this process
    finally:
        push.close(linger=0)
        zctx.term()


async def test_tcp_and_inproc_peers_have_no_credentials() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            for address in ("tcp://127.0.0.1:*", "inproc://no-credentials"):
                server = ctx.socket(trimq.PAIR, linger=0)
                endpoint = await server.bind(address)
                client = ctx.socket(trimq.PAIR, linger=0)
                await client.connect(endpoint)
                await client.send(b"x")
                peer = (await server.recv_message()).peer
                assert peer is not None
                assert (peer.pid, peer.uid, peer.gid) == (None, None, None), address
                await server.send(b"y")  # and the connecting side: none either
                peer = (await client.recv_message()).peer
                assert peer is not None
                assert (peer.pid, peer.uid, peer.gid) == (None, None, None), address


async def test_peer_credentials_never_raises() -> None:
    a, b = trio.socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    with a, b:
        assert peer_credentials(trio.SocketStream(a)) == (
            os.getpid(),
            os.geteuid(),
            os.getegid(),
        )
    # Closed: getsockopt fails with EBADF, which is no credentials, not an error.
    assert peer_credentials(trio.SocketStream(a)) is None
    left, _right = trio.testing.memory_stream_pair()
    assert peer_credentials(left) is None
    tcp = trio.socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    with tcp:
        assert peer_credentials(trio.SocketStream(tcp)) is None


# The other user: import as root, then drop to nobody *before* the context and
# its I/O thread exist, so that the connect happens as nobody.
_AS_NOBODY = f"""
import os, sys
import zmq

os.setgroups([])
os.setgid({NOBODY})
os.setuid({NOBODY})
path = sys.argv[2]
if path and not os.access(path, os.W_OK):
    sys.exit(f"nobody cannot reach {{path}}: the test's directory is not world-accessible")
ctx = zmq.Context()
sock = ctx.socket(zmq.PUSH)
sock.connect(sys.argv[1])
sock.send(b"from nobody")
sock.close(linger=5000)
ctx.term()
"""


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run a process as another user")
@pytest.mark.parametrize("kind", ["file", "abstract"])
async def test_a_peer_of_another_user_is_seen_as_that_user(kind: str) -> None:
    with tempfile.TemporaryDirectory(prefix="trimq-cred-") as directory:
        if kind == "file":
            os.chmod(directory, 0o777)  # the other user must reach the socket
            path = os.path.join(directory, "s.sock")
            address = f"ipc://{path}"
        else:  # the abstract namespace has no permissions at all: anyone can connect
            path = ""
            address = f"ipc://@trimq-cred-{uuid.uuid4().hex}"
        with trio.fail_after(TIMEOUT):
            async with trimq.Context() as ctx:
                pull = ctx.socket(trimq.PULL, linger=0)
                endpoint = await pull.bind(address)
                if path:
                    os.chmod(path, 0o777)  # connecting needs write permission
                command = [sys.executable, "-c", _AS_NOBODY, endpoint, path]
                async with trio.open_nursery() as nursery:
                    child = await nursery.start(trio.run_process, command)
                    msg = await pull.recv_message()
                assert msg.frames == [b"from nobody"]
                peer = msg.peer
                assert peer is not None
                assert (peer.pid, peer.uid, peer.gid) == (child.pid, NOBODY, NOBODY)

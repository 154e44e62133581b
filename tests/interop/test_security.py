"""CURVE and PLAIN between trimq and libzmq, each side as server, with either authenticator.

The server side runs an authenticator of its own kind: trimq's
``trimq.auth.Authenticator`` next to a trimq server, pyzmq's
``ThreadAuthenticator`` next to a libzmq server. Keys and certificates are made
by trimq and read by pyzmq (and the other way round in tests/auth).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trio
import zmq
import zmq.auth
import zmq.auth.thread

import trimq
import trimq.auth

from ._peers import Endpoints, Peer, PeerFactory, TrimqPeer
from .test_pubsub import sync

SERVER_PUBLIC, SERVER_SECRET = trimq.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = trimq.curve_keypair()
STRANGER_PUBLIC, STRANGER_SECRET = trimq.curve_keypair()
IMPOSTOR_PUBLIC, _ = trimq.curve_keypair()  # a server key nobody serves with

USERS = {"admin": "s3cret", "guest": "guest"}
BIG = b"\xab" * (1 << 20)

ROLES = [
    pytest.param("trimq", "pyzmq", id="trimq-server,libzmq-client"),
    pytest.param("pyzmq", "trimq", id="libzmq-server,trimq-client"),
]
MECHANISMS = ["CURVE", "PLAIN"]


def server_options(mechanism: str) -> dict[str, Any]:
    if mechanism == "CURVE":
        return {
            "curve_server": True,
            "curve_secretkey": SERVER_SECRET,
            "curve_publickey": SERVER_PUBLIC,
        }
    return {"plain_server": True}


def client_options(
    mechanism: str,
    *,
    public: bytes = CLIENT_PUBLIC,
    secret: bytes = CLIENT_SECRET,
    server_key: bytes = SERVER_PUBLIC,
    user: str = "admin",
    password: str = "s3cret",
) -> dict[str, Any]:
    if mechanism == "CURVE":
        return {"curve_serverkey": server_key, "curve_publickey": public, "curve_secretkey": secret}
    return {"plain_username": user.encode(), "plain_password": password.encode()}


@contextlib.contextmanager
def pyzmq_authenticator(zctx: Any, key_dir: Path) -> Iterator[Any]:
    """pyzmq's ThreadAuthenticator: USERS for PLAIN, the certificates in key_dir for CURVE."""
    auth = zmq.auth.thread.ThreadAuthenticator(zctx)
    auth.start()
    try:
        auth.configure_plain(domain="*", passwords=USERS)
        auth.configure_curve(domain="*", location=str(key_dir))
        yield auth
    finally:
        auth.stop()


@contextlib.asynccontextmanager
async def authenticator(
    server_kind: str, ctx: trimq.Context, zctx: Any, tmp_path: Path
) -> AsyncIterator[None]:
    """Run the server side's authenticator, allowing USERS and CLIENT_PUBLIC only.

    The allowed key reaches both authenticators as a certificate file written by
    trimq, so pyzmq reading trimq's format is part of every CURVE test.
    """
    key_dir = tmp_path / "allowed"
    key_dir.mkdir()
    # Written by hand in the ZPL layout both libraries read.
    (key_dir / "client.key").write_text(
        "#   ZeroMQ CURVE Public Certificate\n\n"
        'metadata\n    name = "client"\n'
        f'curve\n    public-key = "{CLIENT_PUBLIC.decode()}"\n'
    )
    if server_kind == "pyzmq":
        with pyzmq_authenticator(zctx, key_dir):
            yield
        return
    async with trimq.auth.Authenticator(ctx) as auth:
        auth.configure_plain(domain="*", passwords=USERS)
        auth.configure_curve(domain="*", location=key_dir)
        yield


async def connected(
    peers: PeerFactory,
    endpoints: Endpoints,
    mechanism: str,
    server_kind: str,
    server_type: str,
    client_kind: str,
    client_type: str,
) -> tuple[Peer, Peer]:
    server = peers.make(server_kind, server_type, **server_options(mechanism))
    client = peers.make(client_kind, client_type, **client_options(mechanism))
    await client.connect(await server.bind(endpoints.bind_address("tcp")))
    await client.wait_handshake()
    await server.wait_handshake()
    return server, client


def expected_user_id(mechanism: str) -> bytes:
    # What trimq's authenticator vouches for: the username, or the Z85 key.
    return CLIENT_PUBLIC if mechanism == "CURVE" else b"admin"


@pytest.mark.interop
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("server_kind", "client_kind"), ROLES)
async def test_req_rep(
    peers: PeerFactory,
    endpoints: Endpoints,
    ctx: trimq.Context,
    zctx: Any,
    tmp_path: Path,
    mechanism: str,
    server_kind: str,
    client_kind: str,
) -> None:
    with trio.fail_after(15):
        async with authenticator(server_kind, ctx, zctx, tmp_path):
            rep, req = await connected(
                peers, endpoints, mechanism, server_kind, "REP", client_kind, "REQ"
            )
            for n in range(3):
                await req.send_multipart([b"request %d" % n, b""])
                if isinstance(rep, TrimqPeer):
                    message = await rep.sock.recv_message()
                    assert message.frames == [b"request %d" % n, b""]
                    assert message.peer is not None
                    assert message.peer.mechanism == mechanism
                    assert message.peer.user_id == expected_user_id(mechanism)
                    assert message.peer.metadata["User-Id"] == expected_user_id(mechanism)
                    if mechanism == "CURVE":
                        assert message.peer.z85_public_key == CLIENT_PUBLIC
                else:
                    assert await rep.recv_multipart() == [b"request %d" % n, b""]
                await rep.send_multipart([b"reply %d" % n])
                assert await req.recv_multipart() == [b"reply %d" % n]
            if isinstance(req, TrimqPeer):
                (server,) = req.sock.peers
                assert server.mechanism == mechanism
                # A CURVE client knows the server proved the key it was given.
                expected_key = SERVER_PUBLIC if mechanism == "CURVE" else None
                assert server.z85_public_key == expected_key


@pytest.mark.interop
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("server_kind", "client_kind"), ROLES)
async def test_dealer_router_megabyte_messages(
    peers: PeerFactory,
    endpoints: Endpoints,
    ctx: trimq.Context,
    zctx: Any,
    tmp_path: Path,
    mechanism: str,
    server_kind: str,
    client_kind: str,
) -> None:
    with trio.fail_after(20):
        async with authenticator(server_kind, ctx, zctx, tmp_path):
            router, dealer = await connected(
                peers, endpoints, mechanism, server_kind, "ROUTER", client_kind, "DEALER"
            )
            for n in range(3):
                await dealer.send_multipart([b"%d" % n, BIG, b""])
            for n in range(3):
                routing_id, *body = await router.recv_multipart()
                assert body == [b"%d" % n, BIG, b""]
                if isinstance(router, TrimqPeer):
                    peer = router.sock.peer(routing_id)  # type: ignore[attr-defined]
                    assert peer.user_id == expected_user_id(mechanism)
                await router.send_multipart([routing_id, b"echo", BIG[: 1 << 19] + b"%d" % n])
            for n in range(3):
                assert await dealer.recv_multipart() == [b"echo", BIG[: 1 << 19] + b"%d" % n]


@pytest.mark.interop
@pytest.mark.parametrize("mechanism", MECHANISMS)
@pytest.mark.parametrize(("server_kind", "client_kind"), ROLES)
async def test_pub_sub(
    peers: PeerFactory,
    endpoints: Endpoints,
    ctx: trimq.Context,
    zctx: Any,
    tmp_path: Path,
    mechanism: str,
    server_kind: str,
    client_kind: str,
) -> None:
    with trio.fail_after(15):
        async with authenticator(server_kind, ctx, zctx, tmp_path):
            pub, sub = await connected(
                peers, endpoints, mechanism, server_kind, "PUB", client_kind, "SUB"
            )
            sub.subscribe(b"weather")
            await sync(pub, sub)
            await pub.send_multipart([b"sports", b"2-1"])
            await pub.send_multipart([b"weather", b"rain"])
            got = await sub.recv_multipart()
            while got[0].startswith(b"sync-"):
                got = await sub.recv_multipart()
            assert got == [b"weather", b"rain"]


# ------------------------------------------------------------------ refusals


@pytest.mark.interop
@pytest.mark.parametrize(
    ("mechanism", "bad_options", "event", "reason"),
    [
        pytest.param(
            "CURVE",
            client_options("CURVE", server_key=IMPOSTOR_PUBLIC),
            trimq.EventType.HANDSHAKE_FAILED_PROTOCOL,
            "cannot open the client's HELLO",
            id="curve-wrong-server-key",
        ),
        pytest.param(
            "CURVE",
            client_options("CURVE", public=STRANGER_PUBLIC, secret=STRANGER_SECRET),
            trimq.EventType.HANDSHAKE_FAILED_AUTH,
            "unknown CURVE key",
            id="curve-key-not-allowed",
        ),
        pytest.param(
            "PLAIN",
            client_options("PLAIN", password="wrong"),
            trimq.EventType.HANDSHAKE_FAILED_AUTH,
            "400",
            id="plain-wrong-password",
        ),
        pytest.param(
            "CURVE",
            {},
            trimq.EventType.HANDSHAKE_FAILED_PROTOCOL,
            "mechanism",
            id="null-client-to-curve-server",
        ),
    ],
)
@pytest.mark.parametrize("bad_kind", ["pyzmq", "trimq"])
async def test_trimq_server_refuses_bad_client_and_serves_good_one(
    peers: PeerFactory,
    endpoints: Endpoints,
    ctx: trimq.Context,
    zctx: Any,
    tmp_path: Path,
    mechanism: str,
    bad_options: dict[str, Any],
    event: trimq.EventType,
    reason: str,
    bad_kind: str,
) -> None:
    with trio.fail_after(15):
        async with authenticator("trimq", ctx, zctx, tmp_path):
            server = peers.trimq("PULL", **server_options(mechanism))
            endpoint = await server.bind(endpoints.bind_address("tcp"))
            bad = peers.make(bad_kind, "PUSH", **bad_options)
            await bad.connect(endpoint)
            # Queued before the connection exists: it must never be delivered.
            await bad.send_multipart([b"from the bad client"])
            refusal = await server.monitor.wait_for(
                trimq.EventType.HANDSHAKE_FAILED_PROTOCOL, trimq.EventType.HANDSHAKE_FAILED_AUTH
            )
            assert refusal.type == event, refusal
            assert reason in refusal.reason, refusal
            if event == trimq.EventType.HANDSHAKE_FAILED_AUTH:
                assert refusal.value == 400
            if isinstance(bad, TrimqPeer) and event == trimq.EventType.HANDSHAKE_FAILED_AUTH:
                # The refused trimq client hears why (the server's ERROR 400).
                seen = await bad.monitor.wait_for(trimq.EventType.HANDSHAKE_FAILED_AUTH)
                assert seen.value == 400
                assert "ERROR '400'" in seen.reason

            good = peers.make(
                "pyzmq" if bad_kind == "trimq" else "trimq", "PUSH", **client_options(mechanism)
            )
            await good.connect(endpoint)
            await good.send_multipart([b"from the good client"])
            assert await server.recv_multipart() == [b"from the good client"]
            with pytest.raises(trio.WouldBlock):
                server.sock.recv_multipart_nowait()
            stats = server.sock.statistics()
            assert stats.peers == 1
            assert stats.messages_received == 1


@pytest.mark.interop
@pytest.mark.parametrize(
    ("mechanism", "bad_options"),
    [
        pytest.param(
            "CURVE",
            client_options("CURVE", public=STRANGER_PUBLIC, secret=STRANGER_SECRET),
            id="curve-key-not-allowed",
        ),
        pytest.param("PLAIN", client_options("PLAIN", password="wrong"), id="plain-wrong-password"),
    ],
)
async def test_libzmq_server_refusal_reaches_trimq_client(
    peers: PeerFactory,
    endpoints: Endpoints,
    ctx: trimq.Context,
    zctx: Any,
    tmp_path: Path,
    mechanism: str,
    bad_options: dict[str, Any],
) -> None:
    with trio.fail_after(15):
        async with authenticator("pyzmq", ctx, zctx, tmp_path):
            server = peers.pyzmq("PULL", **server_options(mechanism))
            endpoint = await server.bind(endpoints.bind_address("tcp"))
            bad = peers.trimq("PUSH", **bad_options)
            await bad.connect(endpoint)
            await bad.send_multipart([b"from the bad client"])
            refused = await bad.monitor.wait_for(
                trimq.EventType.HANDSHAKE_FAILED_AUTH, trimq.EventType.HANDSHAKE_SUCCEEDED
            )
            assert refused.type == trimq.EventType.HANDSHAKE_FAILED_AUTH, refused
            assert refused.value == 400
            assert bad.sock.statistics().auth_failures == 1
            good = peers.trimq("PUSH", **client_options(mechanism))
            await good.connect(endpoint)
            await good.send_multipart([b"from the good client"])
            assert await server.recv_multipart() == [b"from the good client"]
            assert await server.recv_within(0.05) is None

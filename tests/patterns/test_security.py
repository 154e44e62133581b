"""Security options, libzmq's rules without an authenticator, custom ZAP handlers, peer identity."""

from __future__ import annotations

from collections.abc import Mapping

import pytest
import trio
import trio.testing

import trimq
from trimq.zmtp import ZAP_ENDPOINT, ZapReply, ZapRequest

from ._helpers import TIMEOUT

SERVER_PUBLIC, SERVER_SECRET = trimq.curve_keypair()
CLIENT_PUBLIC, CLIENT_SECRET = trimq.curve_keypair()

CURVE_SERVER = {"curve_server": True, "curve_secretkey": SERVER_SECRET}
CURVE_CLIENT = {
    "curve_serverkey": SERVER_PUBLIC,
    "curve_publickey": CLIENT_PUBLIC,
    "curve_secretkey": CLIENT_SECRET,
}
FAILED = (
    trimq.EventType.HANDSHAKE_FAILED_AUTH,
    trimq.EventType.HANDSHAKE_FAILED_PROTOCOL,
    trimq.EventType.HANDSHAKE_FAILED_NO_DETAIL,
)


# ------------------------------------------------------------------ options


def test_keys_are_stored_raw_whatever_form_they_come_in() -> None:
    raw = trimq.z85_decode(SERVER_SECRET)
    for form in (SERVER_SECRET, SERVER_SECRET.decode(), raw, bytearray(raw)):
        assert trimq.SocketOptions(curve_secretkey=form).curve_secretkey == raw


@pytest.mark.parametrize(
    ("value", "error", "match"),
    [
        (b"short", ValueError, "32 raw bytes or 40 Z85 characters"),
        ("é" * 40, ValueError, "non-ASCII character"),
        (b"~" * 40, ValueError, "not valid Z85"),
        (1234, TypeError, "must be bytes or str"),
    ],
)
def test_bad_keys_are_refused_with_the_option_name(
    value: object, error: type[Exception], match: str
) -> None:
    with pytest.raises(error, match=match) as info:
        trimq.SocketOptions(curve_serverkey=value)  # type: ignore[arg-type]
    assert "curve_serverkey" in str(info.value)


def test_secrets_stay_out_of_repr() -> None:
    options = trimq.SocketOptions(
        curve_secretkey=SERVER_SECRET, plain_username="bob", plain_password="hunter2"
    )
    shown = repr(options)
    assert "hunter2" not in shown
    assert "curve_secretkey" not in shown
    assert repr(trimq.z85_decode(SERVER_SECRET)) not in shown
    assert "plain_username=b'bob'" in shown


@pytest.mark.parametrize(
    ("options", "mechanism"),
    [
        ({}, "NULL"),
        ({"zap_domain": "global"}, "NULL"),
        (CURVE_SERVER, "CURVE"),
        (CURVE_CLIENT, "CURVE"),
        ({"plain_server": True}, "PLAIN"),
        ({"plain_username": "u", "plain_password": "p"}, "PLAIN"),
    ],
)
def test_options_select_a_mechanism(options: dict[str, object], mechanism: str) -> None:
    assert trimq.SocketOptions(**options).security() == mechanism  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({**CURVE_SERVER, "plain_server": True}, "a socket uses one mechanism"),
        ({**CURVE_SERVER, "curve_serverkey": SERVER_PUBLIC}, "only on the client"),
        ({"curve_server": True}, "CURVE needs curve_secretkey"),
        ({"curve_serverkey": SERVER_PUBLIC}, "CURVE needs curve_secretkey"),
        ({"plain_server": True, "plain_username": "u"}, "only on the client"),
        ({"plain_username": "u"}, "without plain_password"),
    ],
)
async def test_bind_and_connect_refuse_inconsistent_security(
    options: dict[str, object], match: str
) -> None:
    async with trimq.Context() as ctx:
        sock = ctx.socket(trimq.PAIR, **options)
        with pytest.raises(ValueError, match=match):
            await sock.bind("tcp://127.0.0.1:*")
        with pytest.raises(ValueError, match=match):
            await sock.connect("tcp://127.0.0.1:5555")


async def test_a_public_key_that_does_not_match_the_secret_one_fails_the_handshake() -> None:
    async with trimq.Context() as ctx:
        server = ctx.socket(trimq.PULL, **CURVE_SERVER, curve_publickey=CLIENT_PUBLIC)
        events = server.monitor()
        client = ctx.socket(trimq.PUSH, **CURVE_CLIENT)
        with trio.fail_after(TIMEOUT):
            await client.connect(await server.bind("tcp://127.0.0.1:*"))
            failed = await events.wait_for(*FAILED)
        assert failed.type == trimq.EventType.HANDSHAKE_FAILED_PROTOCOL
        assert "does not belong to curve_secretkey" in failed.reason


# ------------------------------------------------- without an authenticator


async def handshake_outcome(
    ctx: trimq.Context, server_options: Mapping[str, object], client_options: Mapping[str, object]
) -> trimq.MonitorEvent:
    server = ctx.socket(trimq.PULL, **server_options)
    events = server.monitor()
    client = ctx.socket(trimq.PUSH, linger=0, **client_options)
    await client.connect(await server.bind("tcp://127.0.0.1:*"))
    outcome = await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED, *FAILED)
    if outcome.type == trimq.EventType.HANDSHAKE_SUCCEEDED:
        await client.send(b"through")
        assert await server.recv() == b"through"
    await client.aclose()
    await server.aclose()
    return outcome


async def test_without_authenticator_curve_accepts_any_client() -> None:
    async with trimq.Context() as ctx:
        with trio.fail_after(TIMEOUT):
            outcome = await handshake_outcome(ctx, CURVE_SERVER, CURVE_CLIENT)
        assert outcome.type == trimq.EventType.HANDSHAKE_SUCCEEDED


async def test_without_authenticator_plain_refuses_every_client() -> None:
    async with trimq.Context() as ctx:
        with trio.fail_after(TIMEOUT):
            outcome = await handshake_outcome(
                ctx, {"plain_server": True}, {"plain_username": "u", "plain_password": "p"}
            )
        assert outcome.type == trimq.EventType.HANDSHAKE_FAILED_AUTH
        assert outcome.value == 500
        assert "no ZAP handler" in outcome.reason


async def test_without_authenticator_null_with_domain_is_accepted() -> None:
    async with trimq.Context() as ctx:
        with trio.fail_after(TIMEOUT):
            outcome = await handshake_outcome(ctx, {"zap_domain": "global"}, {})
        assert outcome.type == trimq.EventType.HANDSHAKE_SUCCEEDED


@pytest.mark.parametrize(
    ("server_options", "client_options"),
    [(CURVE_SERVER, CURVE_CLIENT), ({"zap_domain": "global"}, {})],
    ids=["curve", "null"],
)
async def test_zap_enforce_domain_fails_closed_without_authenticator(
    server_options: Mapping[str, object], client_options: Mapping[str, object]
) -> None:
    async with trimq.Context() as ctx:
        with trio.fail_after(TIMEOUT):
            outcome = await handshake_outcome(
                ctx, {**server_options, "zap_enforce_domain": True}, client_options
            )
        assert outcome.type == trimq.EventType.HANDSHAKE_FAILED_AUTH
        assert "zap_enforce_domain" in outcome.reason


# ------------------------------------------------------ custom ZAP handlers


async def serve_zap(ctx: trimq.Context, answer: object, *, task_status: object) -> None:
    """A hand-written ZAP handler: a REP at ZAP_ENDPOINT replying ``answer(request)``."""
    async with ctx.socket(trimq.REP) as rep:
        await rep.bind(ZAP_ENDPOINT)
        task_status.started()  # type: ignore[attr-defined]
        async for frames in rep:
            await rep.send_multipart(answer(frames))  # type: ignore[operator]


async def test_a_hand_written_zap_handler_sees_the_request_and_sets_identity() -> None:
    seen: list[ZapRequest] = []

    def answer(frames: list[bytes]) -> list[bytes]:
        request = ZapRequest.decode(frames)
        seen.append(request)
        return ZapReply(request.request_id, b"200", b"OK", b"bob", {"X-Role": b"admin"}).encode()

    async with trimq.Context() as ctx, trio.open_nursery() as nursery:
        await nursery.start(serve_zap, ctx, answer)
        server = ctx.socket(trimq.PULL, zap_domain="ops", routing_id=b"srv", **CURVE_SERVER)
        client = ctx.socket(trimq.PUSH, **CURVE_CLIENT)
        with trio.fail_after(TIMEOUT):
            await client.connect(await server.bind("tcp://127.0.0.1:*"))
            await client.send(b"hi")
            message = await server.recv_message()
        assert message.frames == [b"hi"]
        peer = message.peer
        assert peer is not None
        assert (peer.transport, peer.mechanism, peer.user_id) == ("tcp", "CURVE", b"bob")
        assert peer.public_key == trimq.z85_decode(CLIENT_PUBLIC)
        assert peer.metadata["User-Id"] == b"bob"
        assert peer.metadata["X-Role"] == b"admin"
        assert peer.socket_type == trimq.PUSH
        (request,) = seen
        assert (request.domain, request.mechanism, request.routing_id) == (
            b"ops",
            b"CURVE",
            b"srv",
        )
        assert request.address == b"127.0.0.1"
        assert request.credentials == (trimq.z85_decode(CLIENT_PUBLIC),)
        nursery.cancel_scope.cancel()


@pytest.mark.parametrize(
    "reply",
    [
        [b"1.0", b"1", b"200"],  # too short
        [b"2.0", b"1", b"200", b"OK", b"", b""],  # wrong version
        [b"1.0", b"1", b"999", b"??", b"", b""],  # unknown status
    ],
    ids=["short", "version", "status"],
)
async def test_a_malformed_zap_reply_refuses_the_peer(reply: list[bytes]) -> None:
    async with trimq.Context() as ctx, trio.open_nursery() as nursery:
        await nursery.start(serve_zap, ctx, lambda frames: reply)
        with trio.fail_after(TIMEOUT):
            outcome = await handshake_outcome(ctx, CURVE_SERVER, CURVE_CLIENT)
        assert outcome.type == trimq.EventType.HANDSHAKE_FAILED_AUTH
        assert outcome.value == 500
        assert "malformed ZAP reply" in outcome.reason
        nursery.cancel_scope.cancel()


async def test_a_zap_handler_that_never_answers_is_bounded_by_handshake_ivl(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with trimq.Context() as ctx, trio.open_nursery() as nursery:
        rep = ctx.socket(trimq.REP)
        await rep.bind(ZAP_ENDPOINT)  # bound, but nobody reads the requests
        server = ctx.socket(trimq.PULL, handshake_ivl=2000, **CURVE_SERVER)
        events = server.monitor()
        client = ctx.socket(trimq.PUSH, linger=0, **CURVE_CLIENT)
        await client.connect(await server.bind("tcp://127.0.0.1:*"))
        start = trio.current_time()
        failed = await events.wait_for(*FAILED)
        assert failed.type == trimq.EventType.HANDSHAKE_FAILED_NO_DETAIL
        assert "timed out" in failed.reason
        assert trio.current_time() - start == pytest.approx(2.0, abs=0.2)
        nursery.cancel_scope.cancel()


# --------------------------------------------------------------- identity


async def test_peer_identity_for_null_and_inproc_peers() -> None:
    async with trimq.Context() as ctx:
        router = ctx.socket(trimq.ROUTER)
        tcp = await router.bind("tcp://127.0.0.1:*")
        await router.bind("inproc://identity")
        over_tcp = ctx.socket(trimq.DEALER, routing_id=b"tcp-peer")
        over_inproc = ctx.socket(trimq.DEALER, routing_id=b"inproc-peer")
        with trio.fail_after(TIMEOUT):
            await over_tcp.connect(tcp)
            await over_inproc.connect("inproc://identity")
            await over_tcp.send(b"a")
            await over_inproc.send(b"b")
            got = {}
            for _ in range(2):
                message = await router.recv_message()
                got[message.frames[0]] = message.peer
        tcp_peer, inproc_peer = got[b"tcp-peer"], got[b"inproc-peer"]
        assert tcp_peer is not None
        assert inproc_peer is not None
        assert (tcp_peer.transport, tcp_peer.mechanism, tcp_peer.user_id) == ("tcp", "NULL", b"")
        assert tcp_peer.public_key is None
        assert tcp_peer.address.startswith("127.0.0.1:")
        assert (inproc_peer.transport, inproc_peer.address) == ("inproc", "")
        assert inproc_peer.socket_type == trimq.DEALER
        assert router.peer(b"tcp-peer") == tcp_peer  # type: ignore[attr-defined]
        assert set(router.peers) == {tcp_peer, inproc_peer}
        with pytest.raises(trimq.HostUnreachableError, match="no peer with routing id"):
            router.peer(b"nobody")  # type: ignore[attr-defined]


async def test_recv_message_refuses_to_split_a_message_started_with_recv() -> None:
    async with trimq.Context() as ctx:
        pull = ctx.socket(trimq.PULL)
        push = ctx.socket(trimq.PUSH)
        await pull.bind("inproc://split")
        await push.connect("inproc://split")
        await push.send_multipart([b"one", b"two"])
        with trio.fail_after(TIMEOUT):
            assert await pull.recv() == b"one"
            with pytest.raises(trimq.SocketStateError, match="recv_multipart"):
                await pull.recv_message()
            assert await pull.recv_multipart() == [b"two"]


async def test_req_recv_message_names_the_peer_that_replied() -> None:
    async with trimq.Context() as ctx:
        rep = ctx.socket(trimq.REP)
        req = ctx.socket(trimq.REQ)
        endpoint = await rep.bind("tcp://127.0.0.1:*")
        await req.connect(endpoint)
        with trio.fail_after(TIMEOUT):
            await req.send(b"q")
            assert await rep.recv() == b"q"
            await rep.send(b"a")
            reply = await req.recv_message()
        assert reply.frames == [b"a"]
        assert reply.peer is not None
        assert reply.peer.socket_type == trimq.REP

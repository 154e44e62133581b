"""The Authenticator deciding real PLAIN, CURVE and NULL handshakes between trimq sockets."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import trio

import trimq
from trimq.auth import Authenticator, AuthenticatorStatistics
from trimq.zmtp._keys import curve_keypair

TIMEOUT = 10
ENDPOINT = "tcp://127.0.0.1:*"


@pytest.fixture
async def ctx() -> AsyncIterator[trimq.Context]:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as context:
            yield context


async def expect_refusal(server: trimq.Socket, client: trimq.Socket, endpoint: str) -> None:
    """Connect ``client`` and wait until ``server`` reports the handshake refused."""
    async with server.monitor() as events:
        await client.connect(endpoint)
        event = await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_AUTH)
    assert "400" in event.reason


async def test_plain_accepted(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        auth.configure_plain(passwords={"admin": "secret"})
        server = ctx.socket(trimq.PULL, plain_server=True)
        endpoint = await server.bind(ENDPOINT)
        client = ctx.socket(trimq.PUSH, plain_username=b"admin", plain_password=b"secret")
        await client.connect(endpoint)
        await client.send(b"hello")
        message = await server.recv_message()
        assert message.frames == [b"hello"]
        assert message.peer is not None
        assert (message.peer.mechanism, message.peer.user_id) == ("PLAIN", b"admin")
        assert auth.statistics() == AuthenticatorStatistics(accepted=1, refused=0, errors=0)


async def test_plain_wrong_password_refused(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        auth.configure_plain(passwords={"admin": "secret"})
        server = ctx.socket(trimq.PULL, plain_server=True)
        endpoint = await server.bind(ENDPOINT)
        client = ctx.socket(trimq.PUSH, plain_username=b"admin", plain_password=b"guess")
        await expect_refusal(server, client, endpoint)
        assert auth.statistics().refused >= 1
        assert auth.statistics().accepted == 0


async def test_curve_key_list(ctx: trimq.Context) -> None:
    server_public, server_secret = curve_keypair()
    known_public, known_secret = curve_keypair()
    async with Authenticator(ctx) as auth:
        auth.configure_curve(location=[known_public])
        server = ctx.socket(trimq.PULL, curve_server=True, curve_secretkey=server_secret)
        endpoint = await server.bind(ENDPOINT)
        client = ctx.socket(
            trimq.PUSH,
            curve_serverkey=server_public,
            curve_publickey=known_public,
            curve_secretkey=known_secret,
        )
        await client.connect(endpoint)
        await client.send(b"signed")
        message = await server.recv_message()
        assert message.peer is not None
        assert (message.peer.mechanism, message.peer.user_id) == ("CURVE", known_public)

        stranger_public, stranger_secret = curve_keypair()
        stranger = ctx.socket(
            trimq.PUSH,
            curve_serverkey=server_public,
            curve_publickey=stranger_public,
            curve_secretkey=stranger_secret,
        )
        await expect_refusal(server, stranger, endpoint)
        assert auth.statistics().accepted == 1


async def test_null_with_a_domain_follows_the_address_policy(ctx: trimq.Context) -> None:
    async with Authenticator(ctx) as auth:
        auth.deny("127.0.0.0/8")
        server = ctx.socket(trimq.PULL, zap_domain=b"global")
        endpoint = await server.bind(ENDPOINT)
        client = ctx.socket(trimq.PUSH)
        await expect_refusal(server, client, endpoint)

"""Endpoint forms beyond plain tcp/ipc paths, against libzmq: IPv6, abstract ipc, ipc://*."""

from __future__ import annotations

import os

import pytest
import trio

from ._peers import Peer, PeerFactory

SIDES = [
    pytest.param("trimq", "pyzmq", id="trimq-binds"),
    pytest.param("pyzmq", "trimq", id="pyzmq-binds"),
]


async def check_pair(binder: Peer, connector: Peer, endpoint: str) -> str:
    """Bind ``binder`` on ``endpoint``, connect, exchange both ways; return the bound endpoint."""
    bound = await binder.bind(endpoint)
    await connector.connect(bound)
    await binder.wait_handshake()
    await connector.wait_handshake()
    await connector.send_multipart([b"ping", b"x" * 300])
    assert await binder.recv_multipart() == [b"ping", b"x" * 300]
    await binder.send_multipart([b"pong"])
    assert await connector.recv_multipart() == [b"pong"]
    return bound


@pytest.mark.interop
@pytest.mark.parametrize(("binder_kind", "connector_kind"), SIDES)
async def test_ipv6_loopback(peers: PeerFactory, binder_kind: str, connector_kind: str) -> None:
    with trio.fail_after(5):
        binder = peers.make(binder_kind, "PAIR", ipv6=True)
        connector = peers.make(connector_kind, "PAIR", ipv6=True)
        bound = await check_pair(binder, connector, "tcp://[::1]:*")
        assert bound.startswith("tcp://[::1]:")


@pytest.mark.interop
@pytest.mark.parametrize(("binder_kind", "connector_kind"), SIDES)
async def test_abstract_ipc(peers: PeerFactory, binder_kind: str, connector_kind: str) -> None:
    with trio.fail_after(5):
        name = f"ipc://@trimq-interop-{os.getpid()}-{binder_kind}"
        binder = peers.make(binder_kind, "PAIR")
        connector = peers.make(connector_kind, "PAIR")
        assert await check_pair(binder, connector, name) == name


@pytest.mark.interop
@pytest.mark.parametrize(("binder_kind", "connector_kind"), SIDES)
async def test_ipc_wildcard(peers: PeerFactory, binder_kind: str, connector_kind: str) -> None:
    """``ipc://*`` binds a fresh path; the returned endpoint works for the other library."""
    with trio.fail_after(5):
        binder = peers.make(binder_kind, "PAIR")
        connector = peers.make(connector_kind, "PAIR")
        bound = await check_pair(binder, connector, "ipc://*")
        assert bound.startswith("ipc://")
        assert bound != "ipc://*"

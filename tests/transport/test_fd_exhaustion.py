"""Running out of file descriptors (EMFILE) must not take a socket down.

The process's descriptor table is filled with ``/dev/null`` descriptors (under
a lowered soft ``RLIMIT_NOFILE``, so filling it is quick). While it is full,
established connections keep passing messages, even through the receive
shortcut that wants a duplicate descriptor (``Engine.wait_input``), and a
connection arriving at a listener makes ``accept`` fail without harming the
socket. Once descriptors are freed, the pending and new connections are
accepted and served.
"""

from __future__ import annotations

import errno
import os
import resource
import socket
from collections.abc import Iterator
from contextlib import contextmanager

import pytest
import trio

import trimq

TIMEOUT = 10
SOFT_LIMIT = 1024  # enough for the test run, small enough to fill quickly


@contextmanager
def lowered_fd_limit() -> Iterator[None]:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    limit = SOFT_LIMIT if soft == resource.RLIM_INFINITY else min(soft, SOFT_LIMIT)
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


class FdHog:
    """Holds every free descriptor until released."""

    def __init__(self) -> None:
        self.fds: list[int] = []

    def fill(self) -> None:
        while True:
            try:
                self.fds.append(os.open(os.devnull, os.O_RDONLY))
            except OSError as exc:
                if exc.errno not in (errno.EMFILE, errno.ENFILE):
                    raise
                return

    def release(self) -> None:
        while self.fds:
            os.close(self.fds.pop())


@contextmanager
def fd_hog() -> Iterator[FdHog]:
    hog = FdHog()
    with lowered_fd_limit():
        try:
            yield hog
        finally:
            hog.release()


def _address(endpoint: str) -> tuple[str, int]:
    host, port = endpoint.removeprefix("tcp://").rsplit(":", 1)
    return host, int(port)


async def _echo(
    server: trimq.Socket, client: trimq.Socket, payload: bytes, *, router: bool
) -> None:
    """client -> server -> client, each side receiving through its recv path."""
    await client.send(payload)
    msg = await server.recv_multipart()
    assert msg[-1] == payload
    await server.send_multipart([*msg[:-1], payload + b" back"])
    assert await client.recv() == payload + b" back"
    assert len(msg) == (2 if router else 1)


@pytest.mark.parametrize(
    ("server_type", "client_type"),
    [(trimq.PAIR, trimq.PAIR), (trimq.ROUTER, trimq.DEALER)],
    ids=["pair", "router-dealer"],
)
async def test_fd_exhaustion_keeps_connections_and_recovers(
    server_type: trimq.SocketType, client_type: trimq.SocketType
) -> None:
    router = server_type == trimq.ROUTER
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(server_type, linger=0)
            endpoint = await server.bind("tcp://127.0.0.1:*")
            client = ctx.socket(client_type, linger=0)
            async with server.monitor() as events:
                await client.connect(endpoint)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
                # Made now, connected once the table is full: accept then fails.
                late = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                try:
                    with fd_hog() as hog:
                        hog.fill()
                        assert hog.fds
                        with pytest.raises(OSError) as info:
                            os.dup(0)
                        assert info.value.errno in (errno.EMFILE, errno.ENFILE)

                        # (a) Neither side has received before, so each recv
                        # wants a duplicate descriptor and cannot have one.
                        for i in range(3):
                            await _echo(server, client, b"full %d" % i, router=router)

                        # (b) The kernel completes the connection; accept cannot.
                        late.connect(_address(endpoint))
                        await events.wait_for(trimq.EventType.ACCEPT_FAILED)
                        await _echo(server, client, b"still full", router=router)

                        hog.release()
                        # The connection that waited in the backlog gets in.
                        await events.wait_for(trimq.EventType.ACCEPTED)
                finally:
                    late.close()

                # (c) A new peer connects and talks.
                newcomer = ctx.socket(trimq.DEALER if router else trimq.PAIR, linger=0)
                if not router:
                    # PAIR takes one peer: let the old one go first.
                    await client.aclose()
                    await events.wait_for(trimq.EventType.DISCONNECTED)
                await newcomer.connect(endpoint)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await _echo(server, newcomer, b"recovered", router=router)
            if router:
                await _echo(server, client, b"old peer too", router=router)


async def test_connect_while_out_of_fds_is_delayed_then_succeeds() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            server = ctx.socket(trimq.PAIR, linger=0)
            endpoint = await server.bind("tcp://127.0.0.1:*")
            client = ctx.socket(trimq.PAIR, linger=0, reconnect_ivl=10)
            async with client.monitor() as events:
                with fd_hog() as hog:
                    hog.fill()
                    await client.connect(endpoint)
                    await events.wait_for(trimq.EventType.CONNECT_DELAYED)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await _echo(server, client, b"late but fine", router=False)

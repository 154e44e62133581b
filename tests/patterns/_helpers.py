"""Helpers shared by the socket-pattern tests (imported relatively by the test modules)."""

from __future__ import annotations

import itertools
import os
import socket
import tempfile
import uuid

import trio
import trio.testing

import trimq

__all__ = [
    "TIMEOUT",
    "bind_endpoint",
    "concrete_endpoint",
    "connect",
    "fill",
    "link",
    "settle",
]

#: Upper bound for one test; every test runs inside ``trio.fail_after(TIMEOUT)``.
TIMEOUT = 5.0

_names = itertools.count()


def bind_endpoint(transport: str) -> str:
    """A bindable endpoint: wildcard tcp port, temporary ipc path, fresh inproc name."""
    if transport == "tcp":
        return "tcp://127.0.0.1:*"
    if transport == "ipc":
        return "ipc://*"
    if transport == "inproc":
        return f"inproc://patterns-{next(_names)}"
    raise ValueError(transport)


def concrete_endpoint(transport: str) -> str:
    """An endpoint usable for connect *before* anything is bound to it."""
    if transport == "tcp":
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        return f"tcp://127.0.0.1:{port}"
    if transport == "ipc":
        return "ipc://" + os.path.join(tempfile.gettempdir(), f"trimq-t-{uuid.uuid4().hex[:12]}")
    return bind_endpoint(transport)


async def settle() -> None:
    """Let every task (and loopback I/O in flight) run until all are blocked."""
    await trio.testing.wait_all_tasks_blocked()


async def connect(sock: trimq.Socket, endpoint: str) -> None:
    """Connect ``sock`` and wait until its side of the handshake is done."""
    async with sock.monitor() as events:
        await sock.connect(endpoint)
        await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)


async def link(binder: trimq.Socket, connector: trimq.Socket, endpoint: str) -> None:
    """Connect ``connector`` to ``binder`` and wait for the handshake on *both* sides."""
    async with binder.monitor() as bound_events, connector.monitor() as conn_events:
        await connector.connect(endpoint)
        await conn_events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
        await bound_events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
    await settle()


async def fill(sock: trimq.Socket, frame: bytes, *, limit: int = 100_000) -> int:
    """``send_nowait`` until it keeps raising WouldBlock after the I/O settled; return count."""
    sent = 0
    while sent < limit:
        try:
            sock.send_nowait(frame)
        except trio.WouldBlock:
            await settle()
            try:
                sock.send_nowait(frame)
            except trio.WouldBlock:
                return sent
        sent += 1
    raise AssertionError(f"socket never became full after {limit} messages")

"""Endpoints a peer announces are checked before a node connects to them:
a bad one costs the peer its events, never a node task."""

from __future__ import annotations

from typing import Any

import pytest
import trio
import zmq

from trimq import actors
from trimq.actors import _wire as wire

from .conftest import current, runtime_of

TIMEOUT = 10


class Echo(actors.Actor):
    def echo(self, value: Any) -> Any:
        return value


@pytest.mark.parametrize(
    "announced",
    [
        "tcp://127.0.0.1:0",  # a wildcard port: nothing to connect to
        "tcp://127.0.0.1:*",
        "tcp://127.0.0.1:99999",
        "ipc://",
        "nonsense",
        "tcp://[::1",
    ],
)
async def test_a_bad_events_endpoint_in_hello_is_refused_and_the_node_goes_on(
    announced: str, caplog: pytest.LogCaptureFixture
) -> None:
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            raw = ctx.socket(zmq.DEALER)
            raw.linger = 0
            raw.rcvtimeo = TIMEOUT * 1000  # a guard only
            raw.connect(a.endpoints[0])
            hello = wire.Hello(name="raw", events=[announced])
            raw.send_multipart(wire.encode_envelope(hello))
            # The WELCOME comes after a handled the HELLO, endpoint and all.
            welcome = await trio.to_thread.run_sync(raw.recv_multipart)
            assert welcome[0].startswith(wire.WELCOME)
            await b.connect(a.endpoints[0])
            ref = await a.spawn(Echo)
            with trio.fail_after(TIMEOUT), current(b):
                assert await ref.ask("echo", [1]) == [1]
        finally:
            ctx.destroy(linger=0)
        assert "raw" in [p.name for p in a.peers]
        assert "events endpoint" in caplog.text


async def test_a_peers_entries_go_with_its_connection() -> None:
    """Fifty peers connect, name themselves, and close: once lost and silent
    for twice the timeout they are forgotten, links, names and events SUBs."""
    async with actors.open_node(
        "a", listen="tcp://127.0.0.1:*", insecure=True, heartbeat=0.1, timeout=0.5
    ) as a:
        await a.spawn(Echo)  # a's events PUB listens: each raw peer's HELLO announces one
        links = runtime_of(a).cluster._links  # type: ignore[union-attr]
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        try:
            for i in range(50):
                raw = ctx.socket(zmq.DEALER)
                raw.linger = 0
                raw.rcvtimeo = TIMEOUT * 1000  # a guard only
                raw.connect(a.endpoints[0])
                hello = wire.Hello(name=f"r{i}", events=[a.endpoints[0]])
                raw.send_multipart(wire.encode_envelope(hello))
                assert (await trio.to_thread.run_sync(raw.recv_multipart))[0].startswith(
                    wire.WELCOME
                )
                raw.close()
        finally:
            ctx.destroy(linger=0)
        assert len(links._inbound) == 50
        assert len(runtime_of(a).cluster.events._subs) == 50  # type: ignore[union-attr]
        with trio.fail_after(TIMEOUT):
            while a.peers:
                await a.membership_changed()  # each is lost after the timeout
        links._forget(trio.current_time() + 2 * 0.5 + 1)  # as the heartbeat does, later
        assert links._inbound == {}
        assert links._named == {}
        assert runtime_of(a).cluster.events._subs == {}  # type: ignore[union-attr]

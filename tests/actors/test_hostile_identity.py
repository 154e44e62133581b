"""A peer cannot act as another node: names are bound to keys (or, insecure,
to live connections), replies to connections, and placement to trust.

Each attack is made by a real peer: a raw libzmq DEALER speaking the node's
envelopes, or a trimq node with a key of its own.
"""

from __future__ import annotations

from typing import Any

import pytest
import trio
import trio.testing
import zmq

import trimq
from trimq import actors
from trimq.actors import _wire as wire

from . import _fixtures
from .conftest import current

TIMEOUT = 10
FAST: dict[str, Any] = {"heartbeat": 0.1, "timeout": 0.5}


class Holder(_fixtures.Holder):
    async def slow(self, event: str) -> str:
        await trio.sleep(0.2)
        return event


def _raw_dealer(ctx: zmq.Context[zmq.Socket[bytes]], endpoint: str, routing_id: bytes) -> Any:
    raw = ctx.socket(zmq.DEALER)
    raw.linger = 0
    raw.routing_id = routing_id  # a routing id of another node's name: no handover
    raw.connect(endpoint)
    return raw


async def test_an_insecure_peer_cannot_take_a_live_nodes_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A raw DEALER says it is "b" (and sets routing id b"b") while b is
    connected and a waits for b's answer: its HELLO is refused, its forged
    REPLYs and its BYE change nothing, and b keeps its link and its replies."""
    async with (
        actors.open_node("a", listen="tcp://127.0.0.1:*", insecure=True) as a,
        actors.open_node("b", insecure=True) as b,
    ):
        await b.connect(a.endpoints[0])
        on_b = await b.spawn(Holder, name="on-b")
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        raw = _raw_dealer(ctx, a.endpoints[0], b"b")
        raw.rcvtimeo = TIMEOUT * 1000  # a guard only: each WHO comes at once
        forged = [wire.encode_envelope(wire.Hello(name="b"))]
        for rid in range(1, 20):  # answers to whatever a asks b
            header = wire.Reply(id=rid, ok=True, node="b")
            forged.append(wire.encode_envelope(header, a.codec.encode("forged")))
        forged.append(wire.encode_envelope(wire.Bye()))

        def attack() -> None:
            for frames in forged:
                raw.send_multipart(frames)
            for _ in forged[1:]:  # a answers each with WHO: it does not know raw
                assert raw.recv_multipart()[0].startswith(wire.WHO)

        try:
            with trio.fail_after(TIMEOUT), current(a):
                async with trio.open_nursery() as nursery:
                    nursery.start_soon(trio.to_thread.run_sync, attack)
                    assert await on_b.ask("slow", "real") == "real"
        finally:
            ctx.destroy(linger=0)
        assert "another live connection holds that name" in caplog.text
        assert [p.name for p in a.peers] == ["b"]
        with trio.fail_after(TIMEOUT), current(a):
            assert await on_b.ask("put", 1) == 1


async def test_an_allowed_key_cannot_claim_another_nodes_name(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """mallory is allowed on the worker (ask only) and calls itself "hub":
    refused, so hub's actor on the worker is untouched and hub keeps asking it."""
    w_pub, w_sec = trimq.curve_keypair()
    hub_pub, hub_sec = trimq.curve_keypair()
    m_pub, m_sec = trimq.curve_keypair()
    allow = {hub_pub: ["ask", "code", "spawn", "publish", "subscribe", "host"], m_pub: ["ask"]}
    async with (
        actors.open_node(
            "worker", listen="tcp://127.0.0.1:*", keys=(w_pub, w_sec), allow=allow, **FAST
        ) as worker,
        actors.open_node("hub", keys=(hub_pub, hub_sec), **FAST) as hub,
    ):
        await hub.connect(worker.endpoints[0], key=w_pub)
        placed = await hub.spawn(Holder, on="worker", name="placed")
        async with actors.open_node("hub", keys=(m_pub, m_sec), **FAST) as mallory:
            with pytest.raises(ConnectionError):
                await mallory.connect(worker.endpoints[0], key=w_pub)
        assert "that name belongs to another key" in caplog.text
        with trio.fail_after(TIMEOUT):
            assert await placed.ask("put", 1) == 1
        assert [ref.name for ref in worker.actors] == ["placed"]


async def test_placement_only_on_nodes_trusted_to_host(caplog: pytest.LogCaptureFixture) -> None:
    """A peer that tags itself "gpu" and may ask (no ``host`` right) gets none
    of hub's spawns; given ``host``, it does."""
    hub_pub, hub_sec = trimq.curve_keypair()
    g_pub, g_sec = trimq.curve_keypair()
    for rights, trusted in ((["ask"], False), (["ask", "host"], True)):
        async with (
            actors.open_node(
                "hub",
                listen="tcp://127.0.0.1:*",
                keys=(hub_pub, hub_sec),
                allow={g_pub: rights},
                **FAST,
            ) as hub,
            actors.open_node(
                "gpu-box", keys=(g_pub, g_sec), tags=["gpu"], allow=[hub_pub], **FAST
            ) as box,
        ):
            await box.connect(hub.endpoints[0], key=hub_pub)
            with trio.fail_after(TIMEOUT):
                while not hub.peers:
                    await hub.membership_changed()
            if trusted:
                ref = await hub.spawn(Holder, on="gpu")
                assert ref.node == "gpu-box"
            else:
                with pytest.raises(actors.ActorNotFoundError, match="not trusted to host"):
                    await hub.spawn(Holder, on="gpu")
                with pytest.raises(actors.ActorNotFoundError, match="not trusted to host"):
                    await hub.spawn(Holder, on="gpu-box")
                assert box.actors == []

"""DEALER/ROUTER: routing ids, drops, router_mandatory, router_handover, ROUTER-ROUTER."""

from __future__ import annotations

import contextlib

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, concrete_endpoint, link, settle


async def test_routing_id_option_is_honoured(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            dealer = ctx.socket(trimq.DEALER, routing_id=b"alice")
            await link(router, dealer, bound)
            await dealer.send_multipart([b"hi", b"there"])
            assert await router.recv_multipart() == [b"alice", b"hi", b"there"]
            await router.send_multipart([b"alice", b"yo"])
            assert await dealer.recv_multipart() == [b"yo"]


async def test_generated_routing_ids(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            dealers = [ctx.socket(trimq.DEALER) for _ in range(3)]
            ids = []
            for i, dealer in enumerate(dealers):
                await link(router, dealer, bound)
                await dealer.send(b"%d" % i)
                ident, body = await router.recv_multipart()
                assert body == b"%d" % i
                assert len(ident) == 5
                assert ident[0] == 0
                ids.append(ident)
            assert len(set(ids)) == 3
            # libzmq: a u32 counter (random start), one step per new peer.
            counters = [int.from_bytes(i[1:], "big") for i in ids]
            assert [(c - counters[0]) % 2**32 for c in counters] == [0, 1, 2]
            for ident, dealer in zip(ids, dealers, strict=True):
                await router.send_multipart([ident, b"for " + ident])
                assert await dealer.recv() == b"for " + ident


async def test_router_drops_to_unknown_peer_silently(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            dealer = ctx.socket(trimq.DEALER, routing_id=b"known")
            await link(router, dealer, bound)
            await router.send_multipart([b"nobody", b"lost"])
            router.send_multipart_nowait([b"nobody", b"lost too"])
            await router.send_multipart([b"known", b"delivered"])
            assert await dealer.recv() == b"delivered"
            stats = router.statistics()
            assert stats.messages_dropped == 2
            assert stats.messages_sent == 1


async def test_router_mandatory_raises_for_unknown_peer(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER, router_mandatory=True)
            bound = await router.bind(endpoint)
            dealer = ctx.socket(trimq.DEALER, routing_id=b"known")
            await link(router, dealer, bound)
            with pytest.raises(trimq.HostUnreachableError, match="nobody"):
                await router.send_multipart([b"nobody", b"x"])
            with pytest.raises(trimq.HostUnreachableError):
                router.send_multipart_nowait([b"nobody", b"x"])
            await router.send_multipart([b"known", b"ok"])
            assert await dealer.recv() == b"ok"


async def test_router_mandatory_waits_for_a_full_peer() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER, router_mandatory=True, sndhwm=1)
            bound = await router.bind("inproc://mandatory-full")
            dealer = ctx.socket(trimq.DEALER, routing_id=b"d", rcvhwm=1)
            await link(router, dealer, bound)
            router.send_multipart_nowait([b"d", b"1"])
            router.send_multipart_nowait([b"d", b"2"])  # inproc capacity = 1 + 1
            with pytest.raises(trio.WouldBlock):
                router.send_multipart_nowait([b"d", b"3"])
            assert router.statistics().messages_dropped == 0
            assert await dealer.recv() == b"1"
            router.send_multipart_nowait([b"d", b"3"])
            assert [await dealer.recv() for _ in range(2)] == [b"2", b"3"]


async def test_duplicate_routing_id_is_refused_without_handover(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            first = ctx.socket(trimq.DEALER, routing_id=b"dup")
            await link(router, first, bound)
            second = ctx.socket(trimq.DEALER, routing_id=b"dup", linger=0)
            async with router.monitor() as events:
                await second.connect(bound)
                if not bound.startswith("inproc://"):
                    await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
            await settle()
            assert router.statistics().peers == 1
            with contextlib.suppress(trio.WouldBlock):
                second.send_nowait(b"from second")  # queued or refused, never routed
            await first.send(b"from first")
            assert await router.recv_multipart() == [b"dup", b"from first"]
            await router.send_multipart([b"dup", b"to dup"])
            assert await first.recv() == b"to dup"
            await settle()
            with pytest.raises(trio.WouldBlock):
                router.recv_multipart_nowait()
            with pytest.raises(trio.WouldBlock):
                second.recv_nowait()


async def test_router_handover_replaces_the_peer(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER, router_handover=True)
            bound = await router.bind(endpoint)
            first = ctx.socket(trimq.DEALER, routing_id=b"dup")
            await link(router, first, bound)
            second = ctx.socket(trimq.DEALER, routing_id=b"dup")
            await link(router, second, bound)
            assert router.statistics().peers == 1
            await router.send_multipart([b"dup", b"to dup"])
            assert await second.recv() == b"to dup"
            with contextlib.suppress(trio.WouldBlock):
                second.send_nowait(b"from second")  # queued or refused, never routed
            assert await router.recv_multipart() == [b"dup", b"from second"]
            await settle()
            with pytest.raises(trio.WouldBlock):
                first.recv_nowait()


async def test_router_to_router_with_ids(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            r1 = ctx.socket(trimq.ROUTER, routing_id=b"r1")
            bound = await r1.bind(endpoint)
            r2 = ctx.socket(trimq.ROUTER, routing_id=b"r2")
            await link(r1, r2, bound)
            await r2.send_multipart([b"r1", b"hello"])
            assert await r1.recv_multipart() == [b"r2", b"hello"]
            await r1.send_multipart([b"r2", b"back"])
            assert await r2.recv_multipart() == [b"r1", b"back"]


async def test_router_rejects_a_message_without_body(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            await router.bind(endpoint)
            with pytest.raises(ValueError, match="routing"):
                await router.send(b"only-an-id")


async def test_router_fair_queues_between_peers(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            for name in (b"a", b"b", b"c"):
                dealer = ctx.socket(trimq.DEALER, routing_id=name)
                await link(router, dealer, bound)
                for i in range(3):
                    await dealer.send(b"%d" % i)
            await settle()
            got = [await router.recv_multipart() for _ in range(9)]
            for k in range(0, 9, 3):
                assert sorted(m[0] for m in got[k : k + 3]) == [b"a", b"b", b"c"]


async def test_dealer_load_balances_and_fair_queues(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            dealer = ctx.socket(trimq.DEALER, routing_id=b"d")
            routers = [ctx.socket(trimq.ROUTER) for _ in range(2)]
            for router in routers:
                await link(router, dealer, await router.bind(bind_endpoint(transport)))
            for i in range(4):
                await dealer.send_multipart([b"%d" % i, b"x"])
            firsts = [[await r.recv_multipart() for _ in range(2)] for r in routers]
            bodies = sorted(int(m[1]) for msgs in firsts for m in msgs)
            assert bodies == [0, 1, 2, 3]
            assert all(int(msgs[1][1]) - int(msgs[0][1]) == 2 for msgs in firsts)
            for n, router in enumerate(routers):
                await router.send_multipart([b"d", b"from %d" % n])
            assert sorted([await dealer.recv() for _ in range(2)]) == [b"from 0", b"from 1"]


async def test_router_mandatory_after_peer_leaves(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER, router_mandatory=True)
            bound = await router.bind(bind_endpoint(transport))
            dealer = ctx.socket(trimq.DEALER, routing_id=b"leaver")
            await link(router, dealer, bound)
            await router.send_multipart([b"leaver", b"hi"])
            assert await dealer.recv() == b"hi"
            async with router.monitor() as events:
                await dealer.aclose()
                if transport != "inproc":
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            assert router.statistics().peers == 0
            with pytest.raises(trimq.HostUnreachableError):
                await router.send_multipart([b"leaver", b"gone"])


async def test_router_peer_can_reconnect_with_same_id_after_leaving(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(endpoint)
            first = ctx.socket(trimq.DEALER, routing_id=b"same")
            await link(router, first, bound)
            async with router.monitor() as events:
                await first.aclose()
                if not endpoint.startswith("inproc://"):
                    await events.wait_for(trimq.EventType.DISCONNECTED)
            again = ctx.socket(trimq.DEALER, routing_id=b"same")
            await link(router, again, bound)
            await router.send_multipart([b"same", b"welcome back"])
            assert await again.recv() == b"welcome back"


async def test_router_connecting_to_a_dealer(endpoint: str) -> None:
    """The ROUTER may be the connecting side; it addresses the binder by its routing_id."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            dealer = ctx.socket(trimq.DEALER, routing_id=b"server")
            bound = await dealer.bind(endpoint)
            router = ctx.socket(trimq.ROUTER)
            await link(dealer, router, bound)
            await router.send_multipart([b"server", b"hello"])
            assert await dealer.recv() == b"hello"
            await dealer.send(b"back")
            assert await router.recv_multipart() == [b"server", b"back"]


async def test_dealer_connecting_before_router_binds_keeps_its_id(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            dealer = ctx.socket(trimq.DEALER, routing_id=b"early", reconnect_ivl=10)
            await dealer.connect(endpoint)
            await dealer.send(b"queued before bind")
            router = ctx.socket(trimq.ROUTER)
            await router.bind(endpoint)
            assert await router.recv_multipart() == [b"early", b"queued before bind"]
            await router.send_multipart([b"early", b"reply"])
            assert await dealer.recv() == b"reply"


async def test_router_connecting_before_dealer_binds(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            router = ctx.socket(trimq.ROUTER, reconnect_ivl=10)
            async with router.monitor() as events:
                await router.connect(endpoint)
                dealer = ctx.socket(trimq.DEALER, routing_id=b"late-server")
                await dealer.bind(endpoint)
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await router.send_multipart([b"late-server", b"found you"])
            assert await dealer.recv() == b"found you"


async def test_refused_duplicate_id_gets_in_once_the_first_leaves() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            router = ctx.socket(trimq.ROUTER)
            bound = await router.bind(bind_endpoint("tcp"))
            first = ctx.socket(trimq.DEALER, routing_id=b"dup")
            await link(router, first, bound)
            second = ctx.socket(trimq.DEALER, routing_id=b"dup", reconnect_ivl=10)
            async with router.monitor() as events:
                await second.connect(bound)
                await events.wait_for(trimq.EventType.HANDSHAKE_FAILED_PROTOCOL)
                await first.aclose()
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            await second.send(b"hello")
            assert await router.recv_multipart() == [b"dup", b"hello"]
            await router.send_multipart([b"dup", b"for the second"])
            assert await second.recv() == b"for the second"

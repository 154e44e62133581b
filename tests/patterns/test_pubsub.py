"""PUB/SUB/XPUB/XSUB: filtering at the publisher, refcounts, XPUB options, proxying, drops."""

from __future__ import annotations

import pytest
import trio

import trimq

from ._helpers import TIMEOUT, bind_endpoint, concrete_endpoint, link, settle


async def _no_message(sock: trimq.Socket) -> None:
    await settle()
    with pytest.raises(trio.WouldBlock):
        sock.recv_multipart_nowait()


async def test_prefix_filtering(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"a")
            await link(pub, sub, bound)
            await settle()
            for topic in (b"apple", b"banana", b"avocado", b"", b"a"):
                await pub.send_multipart([topic, b"body"])
            assert await sub.recv_multipart() == [b"apple", b"body"]
            assert await sub.recv_multipart() == [b"avocado", b"body"]
            assert await sub.recv_multipart() == [b"a", b"body"]
            await _no_message(sub)
            # Filtering happened at the publisher: the SUB never had to discard anything.
            assert sub.statistics().messages_dropped == 0


async def test_filtering_happens_at_the_publisher(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            xsub = ctx.socket(trimq.XSUB)  # no local filtering at all
            await link(pub, xsub, bound)
            await xsub.send(b"\x01news")
            await xsub.send(b"\x01news")  # a duplicate from one connection counts once
            await settle()
            await pub.send(b"weather")
            await pub.send(b"news: hello")
            assert await xsub.recv() == b"news: hello"
            await _no_message(xsub)


async def test_empty_subscription_receives_everything(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(pub, sub, bound)
            sub.subscribe(b"")
            await settle()
            await pub.send(b"anything")
            await pub.send(b"")
            assert await sub.recv() == b"anything"
            assert await sub.recv() == b""


async def test_no_subscription_receives_nothing(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(pub, sub, bound)
            await pub.send(b"anything")
            await _no_message(sub)
            assert pub.statistics().messages_dropped == 0  # not matching is not dropping


async def test_sub_refcounts_subscriptions(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(pub, sub, bound)
            sub.subscribe(b"t")
            sub.subscribe(b"t")
            await settle()
            await pub.send(b"t1")
            assert await sub.recv() == b"t1"
            await _no_message(sub)  # delivered once, not once per subscribe
            sub.unsubscribe(b"t")
            await settle()
            await pub.send(b"t2")
            assert await sub.recv() == b"t2"
            sub.unsubscribe(b"t")
            await settle()
            await pub.send(b"t3")
            await _no_message(sub)


async def test_xpub_sees_one_subscription_per_connection_topic(endpoint: str) -> None:
    """The publisher keeps a *set* per connection: SUB's duplicate subscribes and
    its final cancel must toggle the topic at the publisher exactly once each."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(xpub, sub, bound)
            sub.subscribe(b"t")
            sub.subscribe(b"t")
            assert await xpub.recv() == b"\x01t"
            await _no_message(xpub)
            sub.unsubscribe(b"t")
            await _no_message(xpub)
            sub.unsubscribe(b"t")
            assert await xpub.recv() == b"\x00t"
            # The publisher no longer sends t* to this connection at all.
            await xpub.send(b"t-after")
            await _no_message(sub)
            assert sub.statistics().messages_dropped == 0


async def test_xpub_reports_first_subscribe_and_last_cancel(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            subs = [ctx.socket(trimq.SUB) for _ in range(2)]
            for sub in subs:
                await link(xpub, sub, bound)
            subs[0].subscribe(b"a")
            assert await xpub.recv() == b"\x01a"
            subs[1].subscribe(b"a")
            await _no_message(xpub)
            subs[0].unsubscribe(b"a")
            await _no_message(xpub)
            subs[1].unsubscribe(b"a")
            assert await xpub.recv() == b"\x00a"


async def test_xpub_verbose_reports_every_subscribe(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_verbose=True)
            bound = await xpub.bind(endpoint)
            subs = [ctx.socket(trimq.SUB) for _ in range(2)]
            for sub in subs:
                await link(xpub, sub, bound)
                sub.subscribe(b"a")
                assert await xpub.recv() == b"\x01a"
            subs[0].unsubscribe(b"a")
            await _no_message(xpub)  # verbose does not report every cancel
            subs[1].unsubscribe(b"a")
            assert await xpub.recv() == b"\x00a"


async def test_xpub_verboser_reports_every_cancel(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_verboser=True)
            bound = await xpub.bind(endpoint)
            subs = [ctx.socket(trimq.SUB) for _ in range(2)]
            for sub in subs:
                await link(xpub, sub, bound)
                sub.subscribe(b"a")
                assert await xpub.recv() == b"\x01a"
            for sub in subs:
                sub.unsubscribe(b"a")
                assert await xpub.recv() == b"\x00a"
            await _no_message(xpub)


async def test_xpub_nodrop_raises_wouldblock_instead_of_dropping() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_nodrop=True, sndhwm=2)
            bound = await xpub.bind("inproc://nodrop")
            sub = ctx.socket(trimq.SUB, rcvhwm=3)
            sub.subscribe(b"")
            await link(xpub, sub, bound)
            assert await xpub.recv() == b"\x01"
            for i in range(5):  # inproc capacity = 2 + 3
                xpub.send_nowait(b"%d" % i)
            with pytest.raises(trio.WouldBlock):
                xpub.send_nowait(b"5")
            assert xpub.statistics().messages_dropped == 0
            done = trio.Event()

            async def sender() -> None:
                await xpub.send(b"5")
                done.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(sender)
                await settle()
                assert not done.is_set()
                assert await sub.recv() == b"0"
            assert [await sub.recv() for _ in range(5)] == [b"%d" % i for i in range(1, 6)]


async def test_xpub_welcome_message(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_welcome_msg=b"welcome")
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"welcome")
            await sub.connect(bound)
            assert await sub.recv() == b"welcome"
            assert await xpub.recv() == b"\x01welcome"


async def test_departing_subscriber_cancels_at_xpub(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            stay = ctx.socket(trimq.SUB)
            stay.subscribe(b"shared")
            await link(xpub, stay, bound)
            assert await xpub.recv() == b"\x01shared"
            leave = ctx.socket(trimq.SUB)
            leave.subscribe(b"a")
            leave.subscribe(b"b")
            leave.subscribe(b"shared")
            await link(xpub, leave, bound)
            assert {await xpub.recv() for _ in range(2)} == {b"\x01a", b"\x01b"}
            await leave.aclose()
            assert {await xpub.recv() for _ in range(2)} == {b"\x00a", b"\x00b"}
            await _no_message(xpub)  # "shared" is still held by the other subscriber


async def test_xsub_sends_raw_subscriptions(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            xsub = ctx.socket(trimq.XSUB)
            await link(xpub, xsub, bound)
            await xsub.send(b"\x01news")
            assert await xpub.recv() == b"\x01news"
            await xpub.send_multipart([b"news", b"item"])
            await xpub.send(b"sport")
            assert await xsub.recv_multipart() == [b"news", b"item"]
            await _no_message(xsub)
            await xsub.send(b"\x00news")
            assert await xpub.recv() == b"\x00news"


async def test_proxy_forwards_subscriptions_and_messages(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            publisher = ctx.socket(trimq.XPUB)  # an XPUB so we can see the subscription arrive
            upstream = await publisher.bind(bind_endpoint(transport))
            xsub = ctx.socket(trimq.XSUB)
            await link(publisher, xsub, upstream)
            xpub = ctx.socket(trimq.XPUB)
            downstream = await xpub.bind(bind_endpoint(transport))
            sub = ctx.socket(trimq.SUB)
            await link(xpub, sub, downstream)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trimq.proxy, xsub, xpub)
                sub.subscribe(b"t")
                assert await publisher.recv() == b"\x01t"
                await publisher.send_multipart([b"other", b"x"])
                await publisher.send_multipart([b"t1", b"x"])
                assert await sub.recv_multipart() == [b"t1", b"x"]
                sub.unsubscribe(b"t")
                assert await publisher.recv() == b"\x00t"
                nursery.cancel_scope.cancel()


async def test_pub_drops_for_a_full_subscriber_and_counts(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB, sndhwm=1)
            bound = await pub.bind(bind_endpoint(transport))
            sub = ctx.socket(trimq.SUB, rcvhwm=1)
            sub.subscribe(b"")
            await link(pub, sub, bound)
            await settle()
            # No checkpoint between sends, so nothing drains meanwhile.
            for i in range(10):
                pub.send_nowait(b"%d" % i)  # PUB never blocks
            capacity = 2 if transport == "inproc" else 1  # inproc: sndhwm + rcvhwm
            assert pub.statistics().messages_dropped == 10 - capacity
            got = [await sub.recv() for _ in range(capacity)]
            assert got == [b"%d" % i for i in range(capacity)]
            await _no_message(sub)


async def test_unsubscribe_unknown_topic_is_harmless(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(xpub, sub, bound)
            sub.unsubscribe(b"never")
            sub.unsubscribe("never either")
            await _no_message(xpub)
            sub.subscribe(b"x")
            assert await xpub.recv() == b"\x01x"
            await xpub.send(b"x1")
            assert await sub.recv() == b"x1"


async def test_str_topics_are_accepted(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(pub, sub, bound)
            sub.subscribe("caf\u00e9")
            await settle()
            await pub.send("caf\u00e9 au lait".encode())
            await pub.send(b"tea")
            assert await sub.recv() == "caf\u00e9 au lait".encode()
            sub.unsubscribe("caf\u00e9")
            await settle()
            await pub.send("caf\u00e9 noir".encode())
            await _no_message(sub)


async def test_sub_resubscribes_after_connect(endpoint: str) -> None:
    """Subscriptions made before connecting are sent when the connection comes up."""
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"early")
            await sub.connect(bound)
            assert await xpub.recv() == b"\x01early"


async def test_filter_looks_at_the_first_frame_only(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"a")
            await link(pub, sub, bound)
            await settle()
            await pub.send_multipart([b"x", b"a-in-second-frame"])
            await pub.send_multipart([b"ab", b"x"])
            assert await sub.recv_multipart() == [b"ab", b"x"]
            await _no_message(sub)


async def test_overlapping_prefixes_deliver_once(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            for topic in (b"a", b"ab", b"abc", b""):
                sub.subscribe(topic)
            await link(pub, sub, bound)
            await settle()
            await pub.send(b"abcd")
            assert await sub.recv() == b"abcd"
            await _no_message(sub)
            sub.unsubscribe(b"")
            sub.unsubscribe(b"a")
            await settle()
            await pub.send(b"ab!")
            await pub.send(b"a!")
            assert await sub.recv() == b"ab!"
            await _no_message(sub)


async def test_each_subscriber_gets_its_own_topics(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            subs = {}
            for topic in (b"red", b"blue", b""):
                sub = ctx.socket(trimq.SUB)
                sub.subscribe(topic)
                await link(pub, sub, bound)
                subs[topic] = sub
            await settle()
            for body in (b"red 1", b"blue 1", b"green 1", b"red 2"):
                await pub.send(body)
            assert [await subs[b"red"].recv() for _ in range(2)] == [b"red 1", b"red 2"]
            assert await subs[b"blue"].recv() == b"blue 1"
            assert [await subs[b""].recv() for _ in range(4)] == [
                b"red 1",
                b"blue 1",
                b"green 1",
                b"red 2",
            ]
            for sub in subs.values():
                await _no_message(sub)


async def test_sub_receives_from_several_publishers(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpubs = [ctx.socket(trimq.XPUB) for _ in range(2)]
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"t")
            for xpub in xpubs:
                await sub.connect(await xpub.bind(bind_endpoint(transport)))
            for xpub in xpubs:
                assert await xpub.recv() == b"\x01t"  # every publisher is told
            for i, xpub in enumerate(xpubs):
                await xpub.send(b"t from %d" % i)
            assert sorted([await sub.recv() for _ in range(2)]) == [b"t from 0", b"t from 1"]


async def test_xpub_verbose_reports_duplicates_from_one_connection(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_verbose=True)
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            await link(xpub, sub, bound)
            sub.subscribe(b"a")
            sub.subscribe(b"a")
            assert [await xpub.recv() for _ in range(2)] == [b"\x01a", b"\x01a"]


async def test_xpub_passes_other_upstream_messages_through(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB)
            bound = await xpub.bind(endpoint)
            xsub = ctx.socket(trimq.XSUB)
            await link(xpub, xsub, bound)
            await xsub.send_multipart([b"hello", b"upstream"])
            assert await xpub.recv_multipart() == [b"hello", b"upstream"]


async def test_pub_nodrop_waits_instead_of_dropping() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB, xpub_nodrop=True, sndhwm=1)
            bound = await pub.bind("inproc://pub-nodrop")
            sub = ctx.socket(trimq.SUB, rcvhwm=1)
            sub.subscribe(b"")
            await link(pub, sub, bound)
            pub.send_nowait(b"0")
            pub.send_nowait(b"1")
            with pytest.raises(trio.WouldBlock):
                pub.send_nowait(b"2")
            assert pub.statistics().messages_dropped == 0


async def test_sub_conflate_keeps_the_newest(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            sub = ctx.socket(trimq.SUB, conflate=True)
            sub.subscribe(b"")
            bound = await sub.bind(bind_endpoint(transport))
            xpub = ctx.socket(trimq.XPUB)
            await xpub.connect(bound)
            assert await xpub.recv() == b"\x01"
            for i in range(5):
                await xpub.send(b"%d" % i)
            await settle()
            assert await sub.recv() == b"4"
            await _no_message(sub)


async def test_sub_resubscribes_after_the_publisher_restarts() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.XPUB)
            bound = await first.bind(bind_endpoint("tcp"))
            sub = ctx.socket(trimq.SUB, reconnect_ivl=10)
            sub.subscribe(b"t")
            await sub.connect(bound)
            assert await first.recv() == b"\x01t"
            async with sub.monitor() as events:
                await first.aclose(linger=0)
                await events.wait_for(trimq.EventType.DISCONNECTED)
                second = ctx.socket(trimq.XPUB)
                await second.bind(bound)
                assert await second.recv() == b"\x01t"
            await second.send(b"t again")
            assert await sub.recv() == b"t again"


async def test_proxy_capture_gets_a_copy() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            front = ctx.socket(trimq.PULL)
            front_ep = await front.bind("inproc://cap-front")
            back = ctx.socket(trimq.PUSH)
            back_ep = await back.bind("inproc://cap-back")
            capture = ctx.socket(trimq.PUSH)
            cap_ep = await capture.bind("inproc://cap")
            producer = ctx.socket(trimq.PUSH)
            await producer.connect(front_ep)
            consumer = ctx.socket(trimq.PULL)
            await consumer.connect(back_ep)
            tap = ctx.socket(trimq.PULL)
            await tap.connect(cap_ep)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trimq.proxy, front, back, capture)
                await producer.send_multipart([b"a", b"b"])
                assert await consumer.recv_multipart() == [b"a", b"b"]
                assert await tap.recv_multipart() == [b"a", b"b"]
                nursery.cancel_scope.cancel()


async def test_proxy_returns_when_a_socket_closes() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            front = ctx.socket(trimq.ROUTER)
            back = ctx.socket(trimq.DEALER)
            await front.bind("inproc://proxy-close-front")
            await back.bind("inproc://proxy-close-back")
            async with trio.open_nursery() as nursery:
                nursery.start_soon(trimq.proxy, front, back)
                await settle()
                await front.aclose()
            # Reaching here means proxy() returned by itself.


async def test_subscriptions_are_not_lost_to_the_hwm(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, rcvhwm=5)
            bound = await xpub.bind(endpoint)
            sub = ctx.socket(trimq.SUB, sndhwm=5)
            await link(xpub, sub, bound)
            topics = [b"topic-%04d" % i for i in range(1500)]
            for topic in topics:
                sub.subscribe(topic)
            got = [await xpub.recv() for _ in topics]
            assert got == [b"\x01" + t for t in topics]


async def test_sub_connect_before_bind_subscribes_once_bound(transport: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            endpoint = concrete_endpoint(transport)
            sub = ctx.socket(trimq.SUB, reconnect_ivl=10)
            sub.subscribe(b"t")
            await sub.connect(endpoint)
            xpub = ctx.socket(trimq.XPUB)
            await xpub.bind(endpoint)
            assert await xpub.recv() == b"\x01t"
            await xpub.send(b"t1")
            assert await sub.recv() == b"t1"


async def test_xsub_replays_subscriptions_after_reconnect() -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            first = ctx.socket(trimq.XPUB)
            bound = await first.bind(bind_endpoint("tcp"))
            xsub = ctx.socket(trimq.XSUB, reconnect_ivl=10)
            await link(first, xsub, bound)
            await xsub.send(b"\x01a")
            await xsub.send(b"\x01b")
            await xsub.send(b"\x00b")
            assert [await first.recv() for _ in range(3)] == [b"\x01a", b"\x01b", b"\x00b"]
            async with xsub.monitor() as events:
                await first.aclose(linger=0)
                await events.wait_for(trimq.EventType.DISCONNECTED)
                second = ctx.socket(trimq.XPUB)
                await second.bind(bound)
                assert await second.recv() == b"\x01a"
            await _no_message(second)


async def test_unsubscribe_filters_messages_already_queued(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(endpoint)
            sub = ctx.socket(trimq.SUB)
            sub.subscribe(b"t")
            sub.subscribe(b"u")
            await link(pub, sub, bound)
            await settle()
            await pub.send(b"t queued")
            await pub.send(b"u queued")
            await settle()
            sub.unsubscribe(b"t")  # the SUB also filters locally
            assert await sub.recv() == b"u queued"
            await _no_message(sub)


async def test_departing_subscriber_with_verboser_reports_every_topic(endpoint: str) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            xpub = ctx.socket(trimq.XPUB, xpub_verboser=True)
            bound = await xpub.bind(endpoint)
            stay = ctx.socket(trimq.SUB)
            stay.subscribe(b"shared")
            await link(xpub, stay, bound)
            assert await xpub.recv() == b"\x01shared"
            leave = ctx.socket(trimq.SUB)
            leave.subscribe(b"shared")
            leave.subscribe(b"own")
            await link(xpub, leave, bound)
            assert {await xpub.recv() for _ in range(2)} == {b"\x01shared", b"\x01own"}
            await leave.aclose()
            assert {await xpub.recv() for _ in range(2)} == {b"\x00shared", b"\x00own"}
            await xpub.send(b"shared news")  # still delivered to the one who stayed
            assert await stay.recv() == b"shared news"

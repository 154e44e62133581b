"""Property tests: what goes in comes out, and SUB filtering matches a simple model."""

from __future__ import annotations

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import trimq

from ._helpers import TIMEOUT, bind_endpoint, link, settle

frames = st.binary(max_size=64)
messages = st.lists(st.lists(frames, min_size=1, max_size=4), min_size=1, max_size=20)
PROPERTY_SETTINGS = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)


@pytest.mark.parametrize("kind", ["inproc", "tcp"])
@PROPERTY_SETTINGS
@given(msgs=messages)
async def test_push_pull_delivers_every_message_intact_and_in_order(
    kind: str, msgs: list[list[bytes]]
) -> None:
    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL, rcvhwm=3)
            bound = await pull.bind(bind_endpoint(kind))
            push = ctx.socket(trimq.PUSH, sndhwm=2)
            await push.connect(bound)
            async with trio.open_nursery() as nursery:

                async def produce() -> None:
                    for msg in msgs:
                        await push.send_multipart(msg)

                nursery.start_soon(produce)
                assert [await pull.recv_multipart() for _ in msgs] == msgs


topics = st.binary(max_size=3)


@pytest.mark.parametrize("kind", ["inproc", "tcp"])
@PROPERTY_SETTINGS
@given(
    subscribed=st.lists(topics, max_size=5),
    unsubscribed=st.lists(topics, max_size=5),
    published=st.lists(st.binary(max_size=5), max_size=15),
)
async def test_sub_receives_exactly_the_matching_messages(
    kind: str, subscribed: list[bytes], unsubscribed: list[bytes], published: list[bytes]
) -> None:
    # The model: a multiset of subscriptions; a topic counts while its count is positive.
    counts: dict[bytes, int] = {}
    for topic in subscribed:
        counts[topic] = counts.get(topic, 0) + 1
    for topic in unsubscribed:
        if counts.get(topic, 0) > 0:
            counts[topic] -= 1
    live = [t for t, n in counts.items() if n > 0]
    expected = [m for m in published if any(m.startswith(t) for t in live)]

    with trio.fail_after(TIMEOUT):
        async with trimq.Context() as ctx:
            pub = ctx.socket(trimq.PUB)
            bound = await pub.bind(bind_endpoint(kind))
            sub = ctx.socket(trimq.SUB)
            await link(pub, sub, bound)
            for topic in subscribed:
                sub.subscribe(topic)
            for topic in unsubscribed:
                sub.unsubscribe(topic)
            await settle()
            for body in published:
                await pub.send(body)
            got = [await sub.recv() for _ in expected]
            await settle()
            with pytest.raises(trio.WouldBlock):
                sub.recv_nowait()
            assert got == expected

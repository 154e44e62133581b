"""Publish-subscribe with topic filtering, synchronised on the subscriptions themselves.

One publisher, two subscribers, over tcp::

    publisher XPUB --+--> weather-desk SUB  (subscribed to b"weather." and b"END")
                     +--> sports-desk  SUB  (subscribed to b"sports."  and b"END")

- A subscription is a byte prefix matched against the first frame of each
  message. Subscribers send their subscriptions upstream, so filtering happens
  at the publisher: messages nobody asked for (``traffic.``) never cross the wire.
- PUB/SUB is lossy by design: a message published before a subscription has
  reached the publisher is not delivered to that subscriber (the "slow joiner"),
  and a subscriber that falls behind by more than the high-water mark loses messages.

So instead of sleeping and hoping the subscribers are ready, the publisher is an
XPUB: a PUB that also receives the subscriptions, as ``b"\\x01" + topic`` messages.
It waits until it has seen every subscription it expects, then publishes. With
``xpub_verbose=True`` it sees each subscription of each subscriber (by default an
XPUB only reports the first subscriber to each topic).

Run it with ``python examples/pubsub.py``. Expected output (``...`` stands for
text that varies; the two desks' lines may interleave)::

    publisher: bound tcp://127.0.0.1:..., waiting for 4 subscriptions
    publisher: all 4 subscriptions in, publishing 5 messages
    weather-desk: weather.london: 12C, drizzle
    weather-desk: weather.paris: 18C, sunny
    weather-desk: END after 2 messages, 0 unwanted ones arrived
    sports-desk: sports.football: 2-1
    sports-desk: sports.tennis: 6-4 6-3
    sports-desk: END after 2 messages, 0 unwanted ones arrived
    publisher: done
"""

from __future__ import annotations

from collections import Counter

import trio

import trimq

DESKS = {
    "weather-desk": [b"weather.", b"END"],
    "sports-desk": [b"sports.", b"END"],
}
NEWS = [
    (b"weather.london", b"12C, drizzle"),
    (b"sports.football", b"2-1"),
    (b"traffic.m25", b"jammed"),  # nobody subscribed: filtered out at the publisher
    (b"weather.paris", b"18C, sunny"),
    (b"sports.tennis", b"6-4 6-3"),
]


async def subscriber(ctx: trimq.Context, name: str, endpoint: str) -> None:
    """Print every message received until the ``END`` message arrives."""
    async with ctx.socket(trimq.SUB) as sub:
        await sub.connect(endpoint)
        for topic in DESKS[name]:
            # May be called before or after connect(); trimq re-sends every
            # subscription whenever the connection is (re-)established.
            sub.subscribe(topic)
        count = 0
        async for topic, body in sub:
            if topic == b"END":
                break
            count += 1
            print(f"{name}: {topic.decode()}: {body.decode()}")
        # The SUB also filters locally; its drop counter stays at 0 because the
        # publisher only sent what this subscriber asked for.
        unwanted = sub.statistics().messages_dropped
        print(f"{name}: END after {count} messages, {unwanted} unwanted ones arrived")


async def publish() -> None:
    async with trimq.Context() as ctx:
        publisher = ctx.socket(trimq.XPUB, xpub_verbose=True)
        endpoint = await publisher.bind("tcp://127.0.0.1:*")
        expected = Counter(topic for topics in DESKS.values() for topic in topics)
        total = sum(expected.values())
        print(f"publisher: bound {endpoint}, waiting for {total} subscriptions")

        async with trio.open_nursery() as nursery:
            for name in DESKS:
                nursery.start_soon(subscriber, ctx, name, endpoint)

            # Each subscription arrives as one frame: b"\x01" + topic
            # (an unsubscription would be b"\x00" + topic).
            seen: Counter[bytes] = Counter()
            while seen != expected:
                note = await publisher.recv()
                if note[:1] == b"\x01":
                    seen[note[1:]] += 1
            print(f"publisher: all {total} subscriptions in, publishing {len(NEWS)} messages")

            for topic, body in NEWS:
                # The first frame is the one matched against subscriptions.
                await publisher.send_multipart([topic, body])
            await publisher.send_multipart([b"END", b""])
        # The nursery waited for both subscribers to see END.
        print("publisher: done")


async def main() -> None:
    with trio.fail_after(10):  # a safety net: an example must never hang
        await publish()


if __name__ == "__main__":
    trio.run(main)

"""Prefix matching of message topics against subscriptions."""

from __future__ import annotations

__all__ = ["TopicSet"]


class TopicSet:
    """Subscribed prefixes with a count each.

    Matching tries one dict lookup per distinct prefix length rather than one
    ``startswith`` per subscription, so thousands of topics of a few lengths
    stay cheap.
    """

    __slots__ = ("counts", "lengths")

    def __init__(self) -> None:
        self.counts: dict[bytes, int] = {}
        self.lengths: dict[int, int] = {}

    def __len__(self) -> int:
        return len(self.counts)

    def __contains__(self, topic: bytes) -> bool:
        return topic in self.counts

    def __iter__(self):  # type: ignore[no-untyped-def]
        return iter(self.counts)

    def add(self, topic: bytes) -> bool:
        """Count one more subscription; True if the topic is new."""
        count = self.counts.get(topic, 0)
        self.counts[topic] = count + 1
        if count:
            return False
        n = len(topic)
        self.lengths[n] = self.lengths.get(n, 0) + 1
        return True

    def remove(self, topic: bytes) -> bool:
        """Count one subscription less; True if the topic is now gone. Unknown topics: False."""
        count = self.counts.get(topic, 0)
        if not count:
            return False
        if count > 1:
            self.counts[topic] = count - 1
            return False
        del self.counts[topic]
        n = len(topic)
        left = self.lengths[n] - 1
        if left:
            self.lengths[n] = left
        else:
            del self.lengths[n]
        return True

    def matches(self, data: bytes) -> bool:
        """True if some subscribed topic is a prefix of ``data``."""
        counts = self.counts
        if not counts:
            return False
        for n in self.lengths:  # noqa: SIM110 - a plain loop beats any() on this hot path
            if data[:n] in counts:
                return True
        return False

"""The quick-start example works over every transport."""

from __future__ import annotations

import pytest
import trio

import trimq


@pytest.mark.parametrize("endpoint", ["tcp://127.0.0.1:*", "inproc://smoke"])
async def test_push_pull_quick_start(endpoint: str) -> None:
    with trio.fail_after(10):
        async with trimq.Context() as ctx:
            pull = ctx.socket(trimq.PULL)
            bound = await pull.bind(endpoint)
            push = ctx.socket(trimq.PUSH, linger=0)
            await push.connect(bound)
            await push.send(b"hello")
            await push.send_multipart([b"a", bytearray(b"b"), memoryview(b"c")])
            assert await pull.recv() == b"hello"
            assert await pull.recv_multipart() == [b"a", b"b", b"c"]

"""Many messages in a row between trimq and libzmq: order, completeness, backpressure."""

from __future__ import annotations

import pytest
import trio

from ._peers import Endpoints, PeerFactory

COUNT = 3000
DIRECTIONS = [
    pytest.param("trimq", "pyzmq", id="trimq-PUSH->pyzmq-PULL"),
    pytest.param("pyzmq", "trimq", id="pyzmq-PUSH->trimq-PULL"),
]


def message(n: int) -> list[bytes]:
    """Sizes cycle across the short/long frame boundary; some messages are multipart."""
    body = b"%08d" % n + b"." * (n % 300)
    return [body] if n % 3 else [body, b"", b"%d" % n]


@pytest.mark.interop
@pytest.mark.parametrize(("push_kind", "pull_kind"), DIRECTIONS)
@pytest.mark.parametrize("transport", ["tcp", "ipc"])
async def test_bulk_transfer_keeps_order(
    peers: PeerFactory, endpoints: Endpoints, push_kind: str, pull_kind: str, transport: str
) -> None:
    with trio.fail_after(15):
        pull = peers.make(pull_kind, "PULL")
        push = peers.make(push_kind, "PUSH")
        await push.connect(await pull.bind(endpoints.bind_address(transport)))
        await push.wait_handshake()

        async def send_all() -> None:
            for n in range(COUNT):
                await push.send_multipart(message(n))

        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all)
            for n in range(COUNT):
                assert await pull.recv_multipart() == message(n)


@pytest.mark.interop
@pytest.mark.parametrize(("push_kind", "pull_kind"), DIRECTIONS)
async def test_sender_blocks_when_receiver_is_not_reading(
    peers: PeerFactory, endpoints: Endpoints, push_kind: str, pull_kind: str
) -> None:
    """With small HWMs the sender stops well before COUNT, then everything arrives in order."""
    with trio.fail_after(15):
        pull = peers.make(pull_kind, "PULL", rcvhwm=10)
        push = peers.make(push_kind, "PUSH", sndhwm=10)
        await push.connect(await pull.bind(endpoints.bind_address("tcp")))
        await push.wait_handshake()
        big = b"z" * 100_000  # large enough that socket buffers fill quickly
        sent = 0
        # Stuck: one send waits 0.2 s (the receiver reads nothing meanwhile).
        while sent < 1000 and await push.send_within([b"%d" % sent, big], 0.2):
            sent += 1
        assert sent < 1000, "the sender never blocked: no backpressure"
        for n in range(sent):
            assert await pull.recv_multipart() == [b"%d" % n, big]


@pytest.mark.interop
@pytest.mark.parametrize(("push_kind", "pull_kind"), DIRECTIONS)
async def test_many_frames_and_a_large_frame(
    peers: PeerFactory, endpoints: Endpoints, push_kind: str, pull_kind: str
) -> None:
    with trio.fail_after(10):
        pull = peers.make(pull_kind, "PULL")
        push = peers.make(push_kind, "PUSH")
        await push.connect(await pull.bind(endpoints.bind_address("tcp")))
        await push.wait_handshake()
        many = [bytes([n % 256]) * (n % 7) for n in range(2000)]
        large = [b"head", bytes(range(256)) * (8 * 4096), b"tail"]  # an 8 MiB frame
        await push.send_multipart(many)
        await push.send_multipart(large)
        assert await pull.recv_multipart() == many
        assert await pull.recv_multipart() == large

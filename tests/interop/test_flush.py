"""Writing from the sending task: ``flush=True`` and ``Socket.flush()``.

The peer is libzmq (pyzmq), whose own I/O thread receives while this trio
task blocks in ``poll``: a message arrives only if trimq wrote it before
blocking, since trimq's writer task cannot run meanwhile.
"""

from __future__ import annotations

import zmq

import trimq


async def test_a_flushed_send_is_written_before_the_task_yields() -> None:
    ctx = zmq.Context()
    try:
        router = ctx.socket(zmq.ROUTER)
        router.linger = 0
        port = router.bind_to_random_port("tcp://127.0.0.1")
        async with trimq.Context() as tctx:
            dealer = tctx.socket(trimq.DEALER, linger=0)
            async with dealer.monitor() as events:
                await dealer.connect(f"tcp://127.0.0.1:{port}")
                await events.wait_for(trimq.EventType.HANDSHAKE_SUCCEEDED)
            dealer.send_multipart_nowait([b"queued"])
            assert router.poll(200) == 0  # waits for trimq's writer task
            dealer.flush()
            assert router.poll(5000) == zmq.POLLIN
            assert router.recv_multipart()[1:] == [b"queued"]
            dealer.send_multipart_nowait([b"at once"], flush=True)
            assert router.poll(5000) == zmq.POLLIN
            assert router.recv_multipart()[1:] == [b"at once"]
            assert dealer.flush_on_send is False  # flush=True applies to one message
    finally:
        ctx.destroy(linger=0)

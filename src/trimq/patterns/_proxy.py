"""``proxy``: forward messages between two sockets, like ``zmq_proxy``."""

from __future__ import annotations

import trio

from ._socket import Socket

__all__ = ["proxy"]


async def _forward(source: Socket, dest: Socket, capture: Socket | None) -> None:
    while True:
        msg = await source.recv_multipart()
        if capture is not None:
            await capture.send_multipart(msg)
        await dest.send_multipart(msg)


async def proxy(frontend: Socket, backend: Socket, capture: Socket | None = None) -> None:
    """Shuttle messages both ways between ``frontend`` and ``backend`` until cancelled.

    Each direction runs only if its source can receive (so PUSH/PULL or
    XSUB/XPUB pairs work). A ``capture`` socket gets a copy of every message.
    Returns when either socket is closed.
    """
    async with trio.open_nursery() as nursery:
        for source, dest in ((frontend, backend), (backend, frontend)):
            if source._can_recv and dest._can_send:
                nursery.start_soon(_forward_until_closed, source, dest, capture, nursery)


async def _forward_until_closed(
    source: Socket, dest: Socket, capture: Socket | None, nursery: trio.Nursery
) -> None:
    try:
        await _forward(source, dest, capture)
    except trio.ClosedResourceError:
        nursery.cancel_scope.cancel()

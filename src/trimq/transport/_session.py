"""Background tasks behind ``bind`` (accept loop) and ``connect`` (reconnect loop)."""

from __future__ import annotations

import logging
import random

import trio

from .._monitor import EventType
from ._endpoint import Endpoint
from ._engine import run_engine
from ._owner import PipeOwner
from ._pipe import Pipe
from ._streams import Listener, open_stream

__all__ = ["connect_loop", "next_delay", "serve_listener"]

log = logging.getLogger("trimq.transport")

# After an accept error such as EMFILE, wait before trying again rather than spin.
ACCEPT_ERROR_BACKOFF = 0.1


async def serve_listener(owner: PipeOwner, listener: Listener) -> None:
    """Accept connections forever, each served by its own engine task."""
    endpoint = listener.endpoint
    async with trio.open_nursery() as nursery:
        try:
            while True:
                try:
                    stream, peer = await listener.accept()
                except trio.ClosedResourceError:
                    return  # unbind or close closed the listener
                except OSError as exc:
                    log.warning("accept on %s failed: %s", endpoint, exc)
                    owner.emit(EventType.ACCEPT_FAILED, endpoint, reason=str(exc))
                    await trio.sleep(ACCEPT_ERROR_BACKOFF)
                    continue
                owner.emit(EventType.ACCEPTED, endpoint, peer)
                nursery.start_soon(run_engine, owner, stream, endpoint, peer)
        finally:
            listener.close()
            owner.emit(EventType.CLOSED, endpoint)


def next_delay(ivl_ms: int, ivl_max_ms: int, current_ms: float) -> tuple[float, float]:
    """libzmq's reconnect backoff: returns (this wait in ms, the next base in ms).

    Without a maximum each wait is ``ivl`` plus up to ``ivl`` of jitter, so a
    crowd of clients does not reconnect in lockstep; with one, the wait doubles
    up to the maximum.
    """
    if ivl_max_ms > ivl_ms:
        return current_ms, min(current_ms * 2, ivl_max_ms)
    # Whole milliseconds, as libzmq: the wait lies in [ivl, 2*ivl - 1].
    return ivl_ms + random.randrange(max(ivl_ms, 1)), ivl_ms


async def connect_loop(owner: PipeOwner, ep: Endpoint, endpoint: str, pipe: Pipe | None) -> None:
    """Connect, serve, and reconnect with backoff until cancelled or a protocol error."""
    opts = owner.options
    base = float(opts.reconnect_ivl)
    first = True
    try:
        while True:
            try:
                stream, peer = await open_stream(ep, timeout_ms=opts.connect_timeout)
            except (OSError, trio.TooSlowError) as exc:
                log.debug("connect to %s failed: %s", endpoint, exc)
                if first:
                    owner.emit(EventType.CONNECT_DELAYED, endpoint, reason=str(exc))
            else:
                owner.emit(EventType.CONNECTED, endpoint, peer)
                outcome = await run_engine(owner, stream, endpoint, peer, pipe)
                if outcome.protocol_error:
                    log.info("not reconnecting to %s after: %s", endpoint, outcome.reason)
                    return
                if outcome.handshaken:
                    base = float(opts.reconnect_ivl)
            first = False
            if opts.reconnect_ivl <= 0:  # libzmq arms its reconnect timer only for ivl > 0
                log.debug("not reconnecting to %s: reconnect_ivl=%d", endpoint, opts.reconnect_ivl)
                return
            wait_ms, base = next_delay(opts.reconnect_ivl, opts.reconnect_ivl_max, base)
            owner.emit(EventType.CONNECT_RETRIED, endpoint, value=round(wait_ms))
            await trio.sleep(wait_ms / 1000)
    finally:
        if pipe is not None:
            owner.detach_pipe(pipe)

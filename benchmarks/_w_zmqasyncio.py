"""zmq.asyncio workers: one ``await`` per ``send``/``recv`` on the default asyncio loop."""

from __future__ import annotations

import asyncio
import time

import zmq
import zmq.asyncio

from benchmarks._job import (
    HWM,
    INPROC_ENDPOINT,
    Job,
    check_final,
    check_mechanism,
    emit,
    final_payload,
    latency_result,
    payload,
    stop_payload,
    thr_result,
    wait_for_release,
)

_MECHANISMS: dict[object, str] = {zmq.NULL: "NULL", zmq.PLAIN: "PLAIN", zmq.CURVE: "CURVE"}


def _socket(
    ctx: zmq.asyncio.Context, kind: int, linger: int, job: Job | None = None
) -> zmq.asyncio.Socket:
    """A socket with our HWMs and linger, and the job's CURVE options if it has any."""
    sock = ctx.socket(kind)
    sock.sndhwm = HWM
    sock.rcvhwm = HWM
    sock.linger = linger
    if job is not None:
        for option, value in job.security_options().items():
            setattr(sock, option, value)
        check_mechanism(_MECHANISMS.get(sock.mechanism, str(sock.mechanism)), job)
    return sock


def _bind(sock: zmq.asyncio.Socket, endpoint: str) -> str:
    sock.bind(endpoint)
    real: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return real


async def send_all(sock: zmq.asyncio.Socket, job: Job) -> None:
    """Send ``warmup + count`` messages, the last one marked."""
    send = sock.send
    msg = payload(job.size)
    for _ in range(job.warmup + job.count - 1):
        await send(msg)
    await send(final_payload(job.size))


async def recv_timed(sock: zmq.asyncio.Socket, job: Job) -> dict[str, object]:
    """Receive the warm-up, then time the first to the last timed message."""
    recv = sock.recv
    for _ in range(job.warmup):
        await recv()
    last = await recv()
    start = time.perf_counter()
    for _ in range(job.count - 1):
        last = await recv()
    elapsed = time.perf_counter() - start
    check_final(last, job.size)
    return thr_result(job.count, elapsed, job.size)


async def _pull(job: Job) -> None:
    with zmq.asyncio.Context() as ctx, _socket(ctx, zmq.PULL, 0, job) as sock:
        emit(endpoint=_bind(sock, job.endpoint))
        emit(result=await recv_timed(sock, job))


async def _push(job: Job) -> None:
    with zmq.asyncio.Context() as ctx, _socket(ctx, zmq.PUSH, -1, job) as sock:
        sock.connect(job.endpoint)
        await send_all(sock, job)
        emit(sent=job.warmup + job.count)
        await asyncio.get_running_loop().run_in_executor(None, wait_for_release)


async def _inproc(job: Job) -> None:
    with (
        zmq.asyncio.Context() as ctx,
        _socket(ctx, zmq.PULL, 0) as rx,
        _socket(ctx, zmq.PUSH, -1) as tx,
    ):
        rx.bind(INPROC_ENDPOINT)
        tx.connect(INPROC_ENDPOINT)
        _, result = await asyncio.gather(send_all(tx, job), recv_timed(rx, job))
        emit(result=result)


async def _rep(job: Job) -> None:
    with zmq.asyncio.Context() as ctx, _socket(ctx, zmq.REP, 1000, job) as sock:
        emit(endpoint=_bind(sock, job.endpoint))
        send, recv = sock.send, sock.recv
        while True:
            msg = await recv()
            await send(msg)
            if len(msg) != job.size:
                break


async def _req(job: Job) -> None:
    with zmq.asyncio.Context() as ctx, _socket(ctx, zmq.REQ, 1000, job) as sock:
        sock.connect(job.endpoint)
        send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
        msg = payload(job.size)
        for _ in range(job.warmup):
            await send(msg)
            await recv()
        samples: list[int] = []
        deadline = clock() + int(job.seconds * 1e9)
        while len(samples) < job.max_samples:
            start = clock()
            await send(msg)
            await recv()
            end = clock()
            samples.append(end - start)
            if end > deadline:
                break
        await send(stop_payload(job.size))
        await recv()
        emit(result=latency_result(samples))


def pull(job: Job) -> None:
    asyncio.run(_pull(job))


def push(job: Job) -> None:
    asyncio.run(_push(job))


def inproc(job: Job) -> None:
    asyncio.run(_inproc(job))


def rep(job: Job) -> None:
    asyncio.run(_rep(job))


def req(job: Job) -> None:
    asyncio.run(_req(job))

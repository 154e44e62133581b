"""trimq workers: one ``await`` per ``send``/``recv`` inside ``trio.run``.

CURVE options (if the job asks for CURVE) are keyword arguments of ``ctx.socket``.
"""

from __future__ import annotations

import time

import trio

import trimq
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


async def send_all(sock: trimq.Socket, job: Job) -> None:
    """Send ``warmup + count`` messages, the last one marked."""
    send = sock.send
    msg = payload(job.size)
    for _ in range(job.warmup + job.count - 1):
        await send(msg)
    await send(final_payload(job.size))


async def recv_timed(sock: trimq.Socket, job: Job) -> dict[str, object]:
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
    async with (
        trimq.Context() as ctx,
        ctx.socket(trimq.PULL, rcvhwm=HWM, linger=0, **job.security_options()) as sock,
    ):
        check_mechanism(sock.options.security(), job)
        emit(endpoint=await sock.bind(job.endpoint))
        emit(result=await recv_timed(sock, job))


async def _push(job: Job) -> None:
    async with (
        trimq.Context() as ctx,
        ctx.socket(trimq.PUSH, sndhwm=HWM, linger=-1, **job.security_options()) as sock,
    ):
        check_mechanism(sock.options.security(), job)
        await sock.connect(job.endpoint)
        await send_all(sock, job)
        emit(sent=job.warmup + job.count)
        await trio.to_thread.run_sync(wait_for_release)


async def _inproc(job: Job) -> None:
    async with (
        trimq.Context() as ctx,
        ctx.socket(trimq.PULL, rcvhwm=HWM, linger=0) as rx,
        ctx.socket(trimq.PUSH, sndhwm=HWM, linger=-1) as tx,
    ):
        await rx.bind(INPROC_ENDPOINT)
        await tx.connect(INPROC_ENDPOINT)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(send_all, tx, job)
            result = await recv_timed(rx, job)
        emit(result=result)


async def _rep(job: Job) -> None:
    async with (
        trimq.Context() as ctx,
        ctx.socket(
            trimq.REP, sndhwm=HWM, rcvhwm=HWM, linger=1000, **job.security_options()
        ) as sock,
    ):
        check_mechanism(sock.options.security(), job)
        emit(endpoint=await sock.bind(job.endpoint))
        send, recv = sock.send, sock.recv
        while True:
            msg = await recv()
            await send(msg)
            if len(msg) != job.size:
                break


async def _req(job: Job) -> None:
    async with (
        trimq.Context() as ctx,
        ctx.socket(
            trimq.REQ, sndhwm=HWM, rcvhwm=HWM, linger=1000, **job.security_options()
        ) as sock,
    ):
        check_mechanism(sock.options.security(), job)
        await sock.connect(job.endpoint)
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
    trio.run(_pull, job)


def push(job: Job) -> None:
    trio.run(_push, job)


def inproc(job: Job) -> None:
    trio.run(_inproc, job)


def rep(job: Job) -> None:
    trio.run(_rep, job)


def req(job: Job) -> None:
    trio.run(_req, job)

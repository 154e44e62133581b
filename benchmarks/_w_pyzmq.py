"""pyzmq workers: plain blocking ``send``/``recv``, one call per message."""

from __future__ import annotations

import threading
import time

import zmq

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
    ctx: zmq.Context[zmq.Socket[bytes]], kind: int, linger: int, job: Job | None = None
) -> zmq.Socket[bytes]:
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


def _bind(sock: zmq.Socket[bytes], endpoint: str) -> str:
    sock.bind(endpoint)
    real: str = sock.getsockopt_string(zmq.LAST_ENDPOINT)
    return real


def send_all(sock: zmq.Socket[bytes], job: Job) -> None:
    """Send ``warmup + count`` messages, the last one marked."""
    send = sock.send
    msg = payload(job.size)
    for _ in range(job.warmup + job.count - 1):
        send(msg)
    send(final_payload(job.size))


def recv_timed(sock: zmq.Socket[bytes], job: Job) -> dict[str, object]:
    """Receive the warm-up, then time the first to the last timed message."""
    recv = sock.recv
    for _ in range(job.warmup):
        recv()
    last = recv()
    start = time.perf_counter()
    for _ in range(job.count - 1):
        last = recv()
    elapsed = time.perf_counter() - start
    check_final(last, job.size)
    return thr_result(job.count, elapsed, job.size)


def pull(job: Job) -> None:
    with zmq.Context() as ctx, _socket(ctx, zmq.PULL, 0, job) as sock:
        emit(endpoint=_bind(sock, job.endpoint))
        emit(result=recv_timed(sock, job))


def push(job: Job) -> None:
    with zmq.Context() as ctx, _socket(ctx, zmq.PUSH, -1, job) as sock:
        sock.connect(job.endpoint)
        send_all(sock, job)
        emit(sent=job.warmup + job.count)
        wait_for_release()


def inproc(job: Job) -> None:
    with zmq.Context() as ctx, _socket(ctx, zmq.PULL, 0) as rx, _socket(ctx, zmq.PUSH, -1) as tx:
        rx.bind(INPROC_ENDPOINT)
        tx.connect(INPROC_ENDPOINT)
        sender = threading.Thread(target=send_all, args=(tx, job))
        sender.start()
        result = recv_timed(rx, job)
        sender.join()
        emit(result=result)


def rep(job: Job) -> None:
    with zmq.Context() as ctx, _socket(ctx, zmq.REP, 1000, job) as sock:
        emit(endpoint=_bind(sock, job.endpoint))
        send, recv = sock.send, sock.recv
        while True:
            msg = recv()
            send(msg)
            if len(msg) != job.size:
                break


def req(job: Job) -> None:
    with zmq.Context() as ctx, _socket(ctx, zmq.REQ, 1000, job) as sock:
        sock.connect(job.endpoint)
        send, recv, clock = sock.send, sock.recv, time.perf_counter_ns
        msg = payload(job.size)
        for _ in range(job.warmup):
            send(msg)
            recv()
        samples: list[int] = []
        deadline = clock() + int(job.seconds * 1e9)
        while len(samples) < job.max_samples:
            start = clock()
            send(msg)
            recv()
            end = clock()
            samples.append(end - start)
            if end > deadline:
                break
        send(stop_payload(job.size))
        recv()
        emit(result=latency_result(samples))

"""What a worker process is asked to do, and how it answers.

A worker is started as ``python -m benchmarks.worker JOB_JSON``. It writes
one JSON object per line on stdout: ``{"endpoint": ...}`` once it has bound
(receivers and REP only), ``{"sent": n}`` (throughput senders, which then
wait for stdin to close before closing their socket), and ``{"result": {...}}``
when done. Failures go to stderr as a traceback with a non-zero exit status.

CURVE keys travel in the job (Z85 text, generated once by the harness), so
no worker spends time on key generation; the binding end (PULL, REP) is the
CURVE server, the connecting end (PUSH, REQ) the client.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from dataclasses import dataclass
from typing import Any

IMPLS = ("trimq", "pyzmq", "zmq.asyncio")
"""Implementations, in the order they are interleaved."""

HWM = 1000
"""SNDHWM/RCVHWM for every socket: libzmq's default, set explicitly everywhere."""

INPROC_ENDPOINT = "inproc://trimq-bench"

SECURITIES = ("null", "curve")
"""ZMTP security mechanisms a job can use."""

_SERVER_ROLES = ("pull", "rep")
_CLIENT_ROLES = ("push", "req")


@dataclass(frozen=True)
class Job:
    """One worker process's task.

    Roles: ``pull``/``push`` (throughput receiver/sender, separate processes),
    ``inproc`` (both ends as two tasks or threads of one process),
    ``rep``/``req`` (latency).
    """

    impl: str
    role: str
    size: int
    count: int = 0
    """Throughput: timed messages; the clock runs from the first to the last."""
    warmup: int = 0
    """Messages (or round trips) exchanged before the timed part."""
    endpoint: str = ""
    """Where receivers/REP bind, and where senders/REQ connect."""
    seconds: float = 0.0
    """Latency: how long REQ keeps timing round trips."""
    max_samples: int = 200_000
    """Latency: stop after this many timed round trips even if time is left."""
    security: str = "null"
    """``null`` (no security) or ``curve``; CURVE needs the four keys below."""
    server_public: str = ""
    """CURVE server's public key, Z85 (40 characters); every client is given it."""
    server_secret: str = ""
    client_public: str = ""
    client_secret: str = ""

    def security_options(self) -> dict[str, Any]:
        """libzmq-named socket options for this job's end of the connection.

        Empty for NULL. For CURVE the binding end (PULL, REP) is the server
        and the connecting end (PUSH, REQ) the client. The keys are bytes;
        ``curve_server`` comes first, as libzmq wants it before the keys.
        """
        if self.security == "null":
            return {}
        if self.security != "curve":
            raise ValueError(f"unknown security mechanism {self.security!r}")
        keys = (self.server_public, self.server_secret, self.client_public, self.client_secret)
        if any(len(k) != 40 for k in keys):
            raise ValueError("CURVE job without four 40-character Z85 keys")
        if self.role in _SERVER_ROLES:
            return {
                "curve_server": True,
                "curve_secretkey": self.server_secret.encode("ascii"),
                "curve_publickey": self.server_public.encode("ascii"),
            }
        if self.role in _CLIENT_ROLES:
            return {
                "curve_serverkey": self.server_public.encode("ascii"),
                "curve_secretkey": self.client_secret.encode("ascii"),
                "curve_publickey": self.client_public.encode("ascii"),
            }
        raise ValueError(f"CURVE is only benchmarked over tcp, not for role {self.role!r}")

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self))

    @classmethod
    def from_json(cls, text: str) -> Job:
        return cls(**json.loads(text))


def check_mechanism(actual: str, job: Job) -> None:
    """Raise unless the socket really uses the job's mechanism (``NULL``/``CURVE``).

    Guards against a CURVE figure that was secretly measured without CURVE.
    """
    if actual.lower() != job.security:
        raise RuntimeError(f"socket mechanism is {actual}, the job asked for {job.security}")


def payload(size: int) -> bytes:
    """An ordinary message body."""
    return b"\x00" * size


def final_payload(size: int) -> bytes:
    """The last message a throughput sender sends; the receiver checks for it."""
    return b"\x01" + b"\x00" * (size - 1)


def stop_payload(size: int) -> bytes:
    """The latency client's goodbye: one byte longer than a request, so REP stops."""
    return b"\x02" * (size + 1)


def check_final(message: bytes, size: int) -> None:
    """Raise if the receiver's last timed message is not the sender's last one.

    Catches lost or reordered messages: a receiver that got too few messages
    stops on an ordinary one (too many would hang and hit the timeout).
    """
    if len(message) != size or message[:1] != b"\x01":
        raise RuntimeError(
            f"last timed message is not the final one: len={len(message)} "
            f"first byte={message[:1]!r} (messages lost, duplicated or reordered)"
        )


def wait_for_release() -> None:
    """Block until the harness closes our stdin: a sender's cue to close its socket.

    Throughput senders keep their connection open until the receiver has
    reported, so the receiver's completion is what ends a run. Closing the
    sender early can lose the tail of the stream on libzmq ipc (libzmq
    issue #4660: a sender with LINGER set exits while a receiver at its HWM
    has not read everything yet; seen here as ~400 of 200,000 messages lost
    with a zmq.asyncio receiver).
    """
    sys.stdin.buffer.read()


def emit(**fields: Any) -> None:
    """Write one JSON line on stdout and flush it at once."""
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def thr_result(count: int, elapsed: float, size: int) -> dict[str, Any]:
    """Throughput result: ``count`` messages received over ``elapsed`` seconds.

    The clock starts when the first timed message arrives, so ``count - 1``
    message intervals fit in ``elapsed``.
    """
    return {"count": count, "seconds": elapsed, "size": size}


def latency_result(samples_ns: list[int]) -> dict[str, Any]:
    """Summarise individually timed round trips (nanoseconds)."""
    ordered = sorted(samples_ns)
    n = len(ordered)
    if n == 0:
        raise RuntimeError("no timed round trips")
    p99_index = max(0, -(-99 * n // 100) - 1)  # nearest rank
    return {
        "samples": n,
        "median_us": _median(ordered) / 1000,
        "p99_us": ordered[p99_index] / 1000,
        "min_us": ordered[0] / 1000,
        "mean_us": sum(ordered) / n / 1000,
    }


def _median(ordered: list[int]) -> float:
    n = len(ordered)
    mid = n // 2
    if n % 2:
        return float(ordered[mid])
    return (ordered[mid - 1] + ordered[mid]) / 2

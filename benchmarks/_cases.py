"""The workloads, and how one repetition of each is run and sized.

Throughput runs are sized by calibration: a short run (~0.4 s) measures the
rate, then every timed repetition sends ``rate x target seconds`` messages,
so each lasts about the target (1-3 s) whatever the implementation's speed;
a repetition that strays far from the target re-sizes the later ones.
Latency runs are sized by time instead: REQ keeps timing round trips until
the target has elapsed.

CURVE cases use keys the harness generated once (:func:`generate_curve_keys`)
and hands every worker in its job, so neither key generation nor the
handshake is timed (the handshake is over before the warm-up ends).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, cast

from benchmarks._job import Job
from benchmarks._procs import Worker, WorkerError

STARTUP_SECONDS = 30.0
"""Longest a worker may take to start and bind (imports included)."""

CALIBRATION_SECONDS = 0.4
MIN_COUNT = 100
MAX_COUNT = 50_000_000

# Rough starting guesses (msgs/s cap, bytes/s cap) per implementation, only
# used to size the first calibration run; calibration corrects them.
_GUESS = {"pyzmq": (1.5e6, 2.0e9), "zmq.asyncio": (1.0e5, 1.5e9), "trimq": (1.0e5, 1.0e9)}
# CURVE encrypts every message: start lower (calibration grows a short run by
# up to 20x a step, but a far too long first run costs its full length).
_CURVE_GUESS = {"pyzmq": (1.0e6, 1.0e9), "zmq.asyncio": (1.0e5, 1.0e9), "trimq": (5.0e4, 2.5e8)}


@dataclass(frozen=True)
class Case:
    """One workload: throughput (``thr``) or REQ/REP latency (``lat``)."""

    kind: str
    transport: str
    size: int
    pinned: bool = False
    security: str = "null"
    """ZMTP security mechanism: ``null`` or ``curve`` (tcp only)."""

    @property
    def key(self) -> str:
        pin = " pinned" if self.pinned else ""
        sec = "" if self.security == "null" else f" {self.security}"
        return f"{self.kind} {self.transport} {self.size}{pin}{sec}"

    @property
    def label(self) -> str:
        pin = ", taskset -c 0" if self.pinned else ""
        sec = "" if self.security == "null" else f" {self.security.upper()}"
        return f"{self.transport} {format_size(self.size)}{pin}{sec}"

    @property
    def null(self) -> Case:
        """The same workload without security: the anchor of a CURVE case."""
        return dataclasses.replace(self, security="null")


@dataclass(frozen=True)
class CurveKeys:
    """One server and one client key pair, Z85 text, shared by every CURVE worker."""

    server_public: str
    server_secret: str
    client_public: str
    client_secret: str
    source: str
    """The function that made them."""


def generate_curve_keys() -> CurveKeys:
    """Make the CURVE keys once, in the harness, before any worker starts.

    Uses trimq's generator (``trimq.zmtp.curve_keypair``), or libzmq's
    (``zmq.curve_keypair``) if trimq cannot be imported; both give Z85 keys
    of the same format, and every implementation is handed the same keys.
    """
    for module, name in (("trimq.zmtp", "curve_keypair"), ("zmq", "curve_keypair")):
        try:
            keypair = getattr(importlib.import_module(module), name)
        except (ImportError, AttributeError):
            continue
        pairs = [cast(tuple[bytes, bytes], keypair()) for _ in range(2)]
        (sp, ss), (cp, cs) = ((p.decode("ascii"), q.decode("ascii")) for p, q in pairs)
        return CurveKeys(sp, ss, cp, cs, source=f"{module}.{name}")
    raise RuntimeError("cannot generate CURVE keys: neither trimq.zmtp nor zmq imports")


@dataclass(frozen=True)
class Settings:
    seconds: float
    """Target length of one timed repetition."""
    lat_warmup: int
    """Round trips before the latency clock starts."""
    ipc_dir: Path
    curve_keys: CurveKeys | None = None
    """Keys for CURVE cases; ``None`` if no case uses CURVE."""


@dataclass(frozen=True)
class ThrRun:
    count: int
    seconds: float
    size: int

    @property
    def rate(self) -> float:
        """Messages per second: ``count - 1`` intervals fit between first and last."""
        return (self.count - 1) / self.seconds

    @property
    def mb_per_s(self) -> float:
        return self.rate * self.size / 1e6


def format_size(size: int) -> str:
    for unit, scale in (("MiB", 1 << 20), ("KiB", 1 << 10)):
        if size >= scale and size % scale == 0:
            return f"{size // scale} {unit}"
    return f"{size} B"


def warmup_for(count: int) -> int:
    """A few thousand warm-up messages, fewer for short (large-message) runs."""
    return max(10, min(5000, count // 10))


_ipc_names = itertools.count()


def _bind_endpoint(case: Case, impl: str, settings: Settings) -> str:
    if case.transport == "ipc":
        return f"ipc://{settings.ipc_dir}/{impl.replace('.', '-')}-{next(_ipc_names)}.sock"
    return "tcp://127.0.0.1:*"


def _secure(job: Job, case: Case, settings: Settings) -> Job:
    """The job with the case's security mechanism and, for CURVE, the shared keys."""
    if case.security == "null":
        return job
    keys = settings.curve_keys
    if keys is None:
        raise WorkerError(f"{case.label}: no CURVE keys were generated")
    return dataclasses.replace(
        job,
        security=case.security,
        server_public=keys.server_public,
        server_secret=keys.server_secret,
        client_public=keys.client_public,
        client_secret=keys.client_secret,
    )


def run_thr(impl: str, case: Case, count: int, timeout: float, settings: Settings) -> ThrRun:
    """One throughput repetition; raises :class:`WorkerError` on any failure."""
    job = Job(impl=impl, role="pull", size=case.size, count=count, warmup=warmup_for(count))
    job = _secure(job, case, settings)
    if case.transport == "inproc":
        if case.security != "null":
            raise WorkerError("inproc workers do not set security options")
        with Worker(_replace_role(job, "inproc"), pin=case.pinned) as both:
            result = both.read("result", time.monotonic() + STARTUP_SECONDS + timeout)
            both.finish(time.monotonic() + STARTUP_SECONDS)
        return _thr_run(result)
    job = _with_endpoint(job, _bind_endpoint(case, impl, settings))
    with Worker(job) as receiver:
        endpoint = receiver.read("endpoint", time.monotonic() + STARTUP_SECONDS)
        push_job = _with_endpoint(_replace_role(job, "push"), endpoint)
        with Worker(push_job, hold=True) as sender:
            result = _await_receiver(receiver, sender, time.monotonic() + STARTUP_SECONDS + timeout)
            sender.release()
            receiver.finish(time.monotonic() + STARTUP_SECONDS)
            sender.finish(time.monotonic() + STARTUP_SECONDS)
    return _thr_run(result)


def _await_receiver(receiver: Worker, sender: Worker, deadline: float) -> Any:
    """The receiver's result; on a timeout, say whether the sender had finished."""
    try:
        return receiver.read("result", deadline, watch=(sender,))
    except WorkerError as exc:
        if "timed out" not in str(exc):
            raise
        state = "had sent everything" if sender.has_said("sent") else "was still sending"
        raise WorkerError(f"{exc} (the sender {state})") from None


def run_lat(impl: str, case: Case, settings: Settings) -> dict[str, float]:
    """One latency repetition: REP and REQ in separate processes."""
    timeout = STARTUP_SECONDS + 10 * settings.seconds
    rep_job = Job(impl=impl, role="rep", size=case.size, endpoint="tcp://127.0.0.1:*")
    rep_job = _secure(rep_job, case, settings)
    with Worker(rep_job) as rep:
        endpoint = rep.read("endpoint", time.monotonic() + STARTUP_SECONDS)
        req_job = Job(
            impl=impl,
            role="req",
            size=case.size,
            warmup=settings.lat_warmup,
            endpoint=endpoint,
            seconds=settings.seconds,
        )
        req_job = _secure(req_job, case, settings)
        with Worker(req_job) as req:
            result: dict[str, float] = req.read("result", time.monotonic() + timeout)
            req.finish(time.monotonic() + STARTUP_SECONDS)
            rep.finish(time.monotonic() + STARTUP_SECONDS)
    return result


def calibrate(impl: str, case: Case, settings: Settings) -> tuple[int, float]:
    """Return (message count for one timed repetition, expected seconds)."""
    base, bandwidth = (_GUESS if case.security == "null" else _CURVE_GUESS)[impl]
    guess = min(base, bandwidth / case.size)
    count = max(MIN_COUNT, int(guess * CALIBRATION_SECONDS))
    for _ in range(4):
        run = run_thr(impl, case, count, STARTUP_SECONDS, settings)
        if run.seconds >= 0.6 * CALIBRATION_SECONDS:
            break
        count = int(count * min(20.0, 1.6 * CALIBRATION_SECONDS / max(run.seconds, 0.005)))
    timed = max(MIN_COUNT, min(MAX_COUNT, int(run.rate * settings.seconds)))
    return timed, timed / run.rate


def has_taskset() -> bool:
    return shutil.which("taskset") is not None


def _thr_run(result: Any) -> ThrRun:
    if not isinstance(result, dict):
        raise WorkerError(f"malformed result: {result!r}")
    count, seconds, size = result["count"], result["seconds"], result["size"]
    return ThrRun(count=int(count), seconds=float(seconds), size=int(size))


def _replace_role(job: Job, role: str) -> Job:
    return dataclasses.replace(job, role=role)


def _with_endpoint(job: Job, endpoint: str) -> Job:
    return dataclasses.replace(job, endpoint=endpoint)

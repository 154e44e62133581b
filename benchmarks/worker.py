"""Worker process entry point: ``python -m benchmarks.worker JOB_JSON``.

Imports only the implementation under test, runs one :class:`~benchmarks._job.Job`
and reports on stdout (see :mod:`benchmarks._job`).
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable

from benchmarks._job import Job

_MODULES = {"pyzmq": "_w_pyzmq", "zmq.asyncio": "_w_zmqasyncio", "trimq": "_w_trimq"}
_ROLES = ("pull", "push", "inproc", "rep", "req")


def main(argv: list[str]) -> None:
    if len(argv) != 2:
        raise SystemExit("usage: python -m benchmarks.worker JOB_JSON")
    job = Job.from_json(argv[1])
    if job.impl not in _MODULES or job.role not in _ROLES:
        raise SystemExit(f"unknown implementation or role: {job.impl!r} {job.role!r}")
    module = importlib.import_module(f"benchmarks.{_MODULES[job.impl]}")
    run: Callable[[Job], None] = getattr(module, job.role)
    run(job)


if __name__ == "__main__":
    main(sys.argv)

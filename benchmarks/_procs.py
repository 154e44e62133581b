"""Starting, reading and stopping worker processes, each bounded by a deadline.

Only processes started here are ever killed, through their own
:class:`subprocess.Popen` handles.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from benchmarks._job import Job

ROOT = Path(__file__).resolve().parent.parent
"""The repository root: workers run there so ``benchmarks`` is importable."""


class WorkerError(RuntimeError):
    """A worker failed, hung past its deadline or answered nonsense."""


class Worker:
    """One worker process running one :class:`Job`; use as a context manager."""

    def __init__(self, job: Job, *, pin: bool = False, hold: bool = False) -> None:
        """Start the worker; with ``hold``, its stdin stays open until :meth:`release`."""
        self.job = job
        self._stderr = tempfile.TemporaryFile()  # noqa: SIM115 - closed in __exit__
        self._buffer = b""
        command = [sys.executable, "-m", "benchmarks.worker", job.to_json()]
        if pin:
            command = ["taskset", "-c", "0", *command]
        self.proc = subprocess.Popen(
            command,
            cwd=ROOT,
            stdin=subprocess.PIPE if hold else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._stderr,
            bufsize=0,
        )
        self._pending: dict[str, Any] = {}

    def __enter__(self) -> Worker:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill()
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        self._stderr.close()

    @property
    def name(self) -> str:
        return f"{self.job.impl} {self.job.role} (pid {self.proc.pid})"

    def read(self, key: str, deadline: float, watch: tuple[Worker, ...] = ()) -> Any:
        """Return the value of ``key`` from the JSON lines on stdout.

        Meanwhile, fail as soon as a ``watch``-ed worker dies with an error.
        """
        while key not in self._pending:
            line = self._next_line(deadline, watch)
            try:
                message = json.loads(line)
            except ValueError:
                continue  # stray output from the implementation: not ours
            if isinstance(message, dict):
                self._pending.update(message)
        return self._pending.pop(key)

    def has_said(self, key: str) -> bool:
        """Whether ``key`` arrived already, reading only what is there now."""
        try:
            self._pending[key] = self.read(key, 0.0)
        except WorkerError:
            return False
        return True

    def release(self) -> None:
        """Close the worker's stdin: a held sender then closes its socket and exits."""
        if self.proc.stdin is not None and not self.proc.stdin.closed:
            self.proc.stdin.close()

    def finish(self, deadline: float) -> None:
        """Wait for a clean exit before ``deadline``; raise otherwise."""
        try:
            code = self.proc.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            raise self._error("did not exit before its deadline") from None
        if code != 0:
            raise self._error(f"exited with status {code}")

    def check_alive(self) -> None:
        """Raise if this worker has already exited with an error."""
        code = self.proc.poll()
        if code not in (None, 0):
            raise self._error(f"exited with status {code}")

    def kill(self) -> None:
        """Kill this worker if it is still running, and reap it."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stderr_tail(self, lines: int = 12) -> str:
        """The last ``lines`` lines the worker wrote on stderr."""
        if self._stderr.closed:
            return ""
        self._stderr.seek(0)
        text = self._stderr.read().decode(errors="replace")
        return "\n".join(text.strip().splitlines()[-lines:])

    def _next_line(self, deadline: float, watch: tuple[Worker, ...]) -> bytes:
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        while b"\n" not in self._buffer:
            remaining = max(0.0, deadline - time.monotonic())
            ready, _, _ = select.select([fd], [], [], min(remaining, 0.5))
            if not ready:
                for other in watch:
                    other.check_alive()
                if remaining <= 0:
                    raise WorkerError(f"{self.name} timed out waiting for its report")
                continue
            chunk = os.read(fd, 65536)
            if not chunk:
                self.proc.wait()
                raise self._error(f"exited (status {self.proc.returncode}) before reporting")
            self._buffer += chunk
        line, self._buffer = self._buffer.split(b"\n", 1)
        return line

    def _error(self, what: str) -> WorkerError:
        self.kill()
        tail = self.stderr_tail()
        detail = "".join(f"\n      | {line}" for line in tail.splitlines())
        return WorkerError(f"{self.name} {what}{detail}")


def python_can_import(module: str, timeout: float = 60.0) -> str | None:
    """Return ``None`` if ``module`` imports in a fresh interpreter, else why not."""
    try:
        done = subprocess.run(
            [sys.executable, "-c", f"import {module}"],
            cwd=ROOT,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired:
        return f"importing {module} took over {timeout:.0f} s"
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines()
        return lines[-1] if lines else f"status {done.returncode}"
    return None

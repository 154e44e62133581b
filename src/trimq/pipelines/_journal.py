"""A run's journal on disk, so that a run whose node died can resume: :class:`Journal`.

A journal is one SQLite file, written by chunks, not by items: each call of
:meth:`~Journal.admitted` (source items entering the pipeline together) and
each call of :meth:`~Journal.done_many` (items done together) becomes one
row, whose indexes are packed in one blob (``array('q')``, or only their
bounds when they are a ``range``), so that writing a chunk of 512 items
costs about what writing one item does. The tables:

* ``admitted_chunks``: the indexes admitted together, their range, and the
  chunk's fingerprint (below);
* ``done_chunks``: the indexes done together and their outputs, encoded
  as one list (``encode(outputs)``), or, for items given to
  :meth:`~Journal.done` one by one, each encoded apart (``sizes`` then
  holds the blobs' lengths);
* ``failures``: one row for each failed item, its
  :class:`~trimq.pipelines.Failure` encoded;
* ``meta``: the layout, the pipeline's signature, the finished flag.

A rerun of the same pipeline on the same source reads :meth:`Journal.state`
back: the done and failed items need not be run again, the admitted ones
(admitted, neither done nor failed) were in flight when the run died and
are done again. Done chunks and failures are read back in the order they
were written: an item done or failed again (on a rerun) is what it was
last. The outputs are decoded a chunk at a time, when first read.

Writes cost per batch, not per item: :meth:`~Journal.admitted`,
:meth:`~Journal.done`, :meth:`~Journal.done_many` and :meth:`~Journal.failed`
only buffer in memory (having fingerprinted or encoded what they were
given). :meth:`~Journal.flush` writes the buffer in one transaction; the
run calls :meth:`~Journal.maybe_flush` after each chunk, which flushes once
enough items are pending or enough time has passed since the last commit.
No thread, no task: the journal does nothing between calls.

Consistency. The file is in WAL mode with ``synchronous=NORMAL`` and every
flush is one transaction, so after a ``kill -9`` of the process (or any
crash of it) every committed row is there and the file is not corrupt;
what was buffered or being written is lost, which only means those items
are done again on the rerun. Their stages' side effects then happen twice:
they are at least once anyway (see docs/pipelines.md), and a sink keyed by
``current_item()`` is idempotent. After a power loss or an OS crash the
last commits may be lost too (``synchronous=NORMAL`` does not sync the WAL
at each commit), with the same consequence, and the file is still
consistent.

Fingerprints. A rerun must give the same items at the same indexes, or the
journal's outputs belong to other items. Each admitted chunk records one
fingerprint of its values: a CRC-32 and an Adler-32 (8 bytes) of the pickle
(protocol 5, without memo, so that values sharing objects or not pickle
alike) of the chunk's list of values: a check of consistency, not of
forgery, at half the cost of a cryptographic hash. One fingerprint per value would cost a pickle per
value, several times the budget of a fast pipeline. :meth:`~Journal.check`
and :meth:`~Journal.check_many` compare the values of a rerun chunk by
chunk, so they name the range of a chunk that differs, not the item
(``one of items A..B differs``), and a chunk is compared once all its items
have been checked: a rerun should check every source item it reads, in
order, not only some (checks that run in other chunks than the admissions
are put together; their values are copied, with pickle, until the chunk is
complete). A chunk that :mod:`pickle` cannot pickle gets one fingerprint
per value instead, the values pickle cannot pickle none (they are not
checked): its items are compared one by one, and named. A value whose
pickle differs from one process to another although it is equal (a set of
strings, whose order follows the process's hash seed) is reported as
changed: open the journal with ``fingerprints=False`` for such sources.

The blobs are decoded with the ``decode`` given, pickle by default: a
journal is the run's own data, never open one that came from elsewhere.
A journal is for one run at a time, and not thread-safe: one thread at a
time may call it (it may be another thread than the one that opened it).
"""

from __future__ import annotations

import logging
import os
import pickle
import sqlite3
import time
from array import array
from collections.abc import Callable, Sequence
from types import TracebackType
from typing import Any, NamedTuple

import attrs

from ._errors import Failure
from ._journal_read import JournalReading
from ._journal_rows import (
    _AFRESH,
    JournalError,
    JournalState,
    Outputs,
    _Admitted,
    _chunk_hash,
    _done_ids,
    _fingerprint,
    _Ids,
    _ids,
    _listed,
    _pack,
    dumps,
)

__all__ = [
    "ADMITTED",
    "DONE",
    "FAILED",
    "FLUSH_ROWS",
    "FLUSH_SECONDS",
    "Journal",
    "JournalError",
    "JournalState",
    "Outputs",
    "dumps",
]

log = logging.getLogger("trimq.pipelines")

#: An item's states, as :class:`JournalState` tells them apart.
ADMITTED, DONE, FAILED = 0, 1, 2

#: By default :meth:`Journal.maybe_flush` flushes once this many items are pending...
FLUSH_ROWS = 100_000
#: ... or this many seconds have passed since the last commit.
FLUSH_SECONDS = 1.0

#: The layout of the file; another one is refused.
SCHEMA = "3"  # 3: chunk fingerprints by CRC-32 + Adler-32

_CREATE = (
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    # The small columns first: reading them leaves the blobs' overflow pages alone.
    "CREATE TABLE admitted_chunks ("
    "id INTEGER PRIMARY KEY, first_index INTEGER NOT NULL, last_index INTEGER NOT NULL, "
    "chunk_hash BLOB, value_hashes BLOB, ids BLOB)",
    "CREATE INDEX admitted_chunks_by_first ON admitted_chunks (first_index)",
    # done_chunks and failures share one sequence of ids: the order they were written.
    # Their bounds only for a range (no ids): a done chunk is never looked up by index.
    "CREATE TABLE done_chunks (id INTEGER PRIMARY KEY, first_index INTEGER, "
    "last_index INTEGER, sizes BLOB, ids BLOB, outputs BLOB NOT NULL)",
    "CREATE TABLE failures (id INTEGER PRIMARY KEY, idx INTEGER NOT NULL, blob BLOB NOT NULL)",
)
_TABLES = frozenset({"meta", "admitted_chunks", "done_chunks", "failures"})

_COUNTERS = (
    "SELECT max((SELECT coalesce(max(id), 0) FROM done_chunks), "
    "(SELECT coalesce(max(id), 0) FROM failures)), "
    "(SELECT coalesce(max(id), 0) FROM admitted_chunks), "
    "(SELECT coalesce(max(last_index - first_index), 0) FROM admitted_chunks)"
)


class _Batch(NamedTuple):
    """Rows taken from the buffer, to be committed together."""

    admitted: list[tuple[Any, ...]]
    done: list[tuple[int, int | None, int | None, bytes | None, bytes | None, bytes]]
    failures: list[tuple[int, int, bytes]]
    items: int


class Journal(JournalReading):
    """A run's journal in the SQLite file at ``path`` (see the module docs).

    Args:
        path: The file; created if it does not exist.
        signature: What the pipeline is (its name, its stages' names and
            kinds). A journal written with another signature is refused.
        encode: Turns outputs and failures into bytes (:func:`dumps` by
            default): the list of a :meth:`~Journal.done_many` call's
            outputs, each output of :meth:`~Journal.done`, each failure.
        decode: The reverse (``pickle.loads`` by default).
        clock: Seconds, for :meth:`maybe_flush` (``time.monotonic`` by default).
        flush_rows: :meth:`maybe_flush` flushes once this many items are pending...
        flush_seconds: ... or once this many seconds passed since the last commit.
        fingerprints: Record a fingerprint of each admitted chunk of source
            values, for :meth:`check`.

    Raises:
        JournalError: The file is not a journal, cannot be opened, or was
            written for another pipeline (``signature``).
        ValueError: ``flush_rows`` below 1 or ``flush_seconds`` below 0.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        signature: str,
        *,
        encode: Callable[[Any], bytes] = dumps,
        decode: Callable[[bytes], Any] = pickle.loads,
        clock: Callable[[], float] = time.monotonic,
        flush_rows: int = FLUSH_ROWS,
        flush_seconds: float = FLUSH_SECONDS,
        fingerprints: bool = True,
    ) -> None:
        if flush_rows < 1:
            raise ValueError(f"flush_rows must be at least 1, not {flush_rows!r}")
        if flush_seconds < 0:
            raise ValueError(f"flush_seconds must not be negative, not {flush_seconds!r}")
        self.path = os.fspath(path)
        self.signature = signature
        self.flush_rows = flush_rows
        self.flush_seconds = flush_seconds
        self._encode = encode
        self._decode = decode
        self._clock = clock
        self._fingerprints = fingerprints
        # The buffer: the chunks admitted since the last flush; the done
        # chunks and failures in the order they came, as (ids, outputs,
        # sizes) and (index, blob); the items done one by one since the last
        # of those, which become one done chunk; how many items all that is.
        self._admitted: list[_Admitted] = []
        self._rows: list[
            tuple[_Ids, int | None, int | None, bytes, bytes | None] | tuple[int, bytes]
        ] = []
        self._single_ids: list[int] = []
        self._single_blobs: list[bytes] = []
        self._pending = 0
        # Partly checked admitted chunks: their id -> index -> the value's pickle.
        self._partial: dict[int, dict[int, bytes | None]] = {}
        self._closed = False
        self._conn, self._finished, self._seq, self._admit_seq, self._span = self._connect()
        self._last = clock()

    @classmethod
    def open(cls, path: str | os.PathLike[str], signature: str, **options: Any) -> Journal:
        """The journal at ``path``, created if need be (``options``: the constructor's)."""
        return cls(path, signature, **options)

    def _connect(self) -> tuple[sqlite3.Connection, bool, int, int, int]:
        path = self.path
        try:
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error as exc:
            raise JournalError(f"cannot open the journal {path!r}: {exc}") from exc
        try:
            conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("BEGIN IMMEDIATE")  # one creator, if two runs open it at once
            tables = {
                name
                for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            }
            if not tables:
                for statement in _CREATE:
                    conn.execute(statement)
                conn.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("schema", SCHEMA), ("signature", self.signature), ("finished", "0")],
                )
                meta = {"finished": "0"}
            else:
                if "meta" not in tables:
                    raise JournalError(
                        f"{path!r} is an SQLite file but not a pipeline's journal. {_AFRESH}"
                    )
                meta = dict(conn.execute("SELECT key, value FROM meta"))
                if meta.get("schema") != SCHEMA or not tables >= _TABLES:
                    raise JournalError(
                        f"the journal {path!r} has layout {meta.get('schema')!r}, "
                        f"this version of trimq reads layout {SCHEMA!r}. {_AFRESH}"
                    )
                stored = meta.get("signature")
                if stored != self.signature:
                    raise JournalError(
                        f"the journal {path!r} belongs to another pipeline: it was written "
                        f"for {stored!r}, not {self.signature!r}. {_AFRESH}"
                    )
            seq, admit_seq, span = conn.execute(_COUNTERS).fetchone()
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.rollback()
            conn.close()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"cannot open the journal {path!r}: {exc}") from exc
            raise
        return conn, meta.get("finished") == "1", seq, admit_seq, span

    # ------------------------------------------------------------------ writing

    def admitted(self, ids: Sequence[int], values: Sequence[Any]) -> None:
        """Source items ``ids`` (with these values) entered the pipeline: one chunk."""
        self._writable()
        if len(ids) != len(values):
            raise ValueError(f"{len(ids)} ids but {len(values)} values")
        if not len(ids):
            return
        packed, first, last = _ids(ids)
        chunk_hash = value_hashes = None
        if self._fingerprints:
            listed = _listed(values)
            chunk_hash = _chunk_hash(listed)
            if chunk_hash is None:
                value_hashes = b"".join(map(_fingerprint, listed))
        self._admit_seq += 1
        self._admitted.append(
            _Admitted(self._admit_seq, first, last, packed, chunk_hash, value_hashes)
        )
        self._pending += len(packed)

    def done(self, index: int, outputs: Any) -> None:
        """Source item ``index`` is done: ``outputs`` is what the run keeps of it
        (its output, or its ``(path, output)`` list after a generator stage).

        Outputs that ``encode`` refuses are not journaled (logged): the item
        stays admitted, and a rerun does it again.
        """
        self._writable()
        try:
            blob = self._encode(outputs)
        except Exception as exc:
            _unencodable(index, exc)
            return
        self._single_ids.append(index)
        self._single_blobs.append(blob)
        self._pending += 1

    def done_many(self, ids: Sequence[int], outputs: Sequence[Any]) -> None:
        """:meth:`done` for each of ``ids``, with the outputs side by side: one chunk,
        its outputs encoded as one list (if ``encode`` refuses it, one by one)."""
        self._writable()
        if len(ids) != len(outputs):
            raise ValueError(f"{len(ids)} ids but {len(outputs)} outputs")
        if not len(ids):
            return
        listed = _listed(outputs)
        try:
            blob = self._encode(listed)
        except Exception:
            for index, output in zip(ids, listed, strict=True):
                self.done(index, output)
            return
        self._seal()
        self._rows.append((*_done_ids(ids), blob, None))
        self._pending += len(listed)

    def failed(self, index: int, failure: Failure) -> None:
        """Source item ``index`` failed for good.

        A failure whose item or error ``encode`` refuses is journaled with
        their ``repr`` instead (the error as a :class:`RuntimeError`).
        """
        self._writable()
        try:
            blob = self._encode(failure)
        except Exception:
            try:
                error = RuntimeError(f"{type(failure.error).__name__}: {failure.error}")
                blob = self._encode(attrs.evolve(failure, item=repr(failure.item), error=error))
            except Exception as exc:
                _unencodable(index, exc)
                return
        self._seal()
        self._rows.append((index, blob))
        self._pending += 1

    def _seal(self) -> None:
        """The items done one by one since the last row become one done chunk."""
        blobs = self._single_blobs
        if blobs:
            sizes = _pack(array("q", map(len, blobs)))
            self._rows.append((*_done_ids(self._single_ids), b"".join(blobs), sizes))
            self._single_ids = []
            self._single_blobs = []

    @property
    def pending(self) -> int:
        """Items buffered, not yet written (an item admitted and done counts twice)."""
        return self._pending

    def maybe_flush(self) -> bool:
        """Flush if ``flush_rows`` items are pending, or some are and ``flush_seconds``
        passed since the last commit. Returns whether it flushed."""
        pending = self._pending
        if pending and (
            pending >= self.flush_rows or self._clock() - self._last >= self.flush_seconds
        ):
            self._write(finish=False)
            return True
        return False

    def flush(self) -> int:
        """Write everything pending, in one transaction. Returns how many items it
        wrote (an item admitted and done counts twice, as in :attr:`pending`).

        Raises:
            JournalError: The file could not be written (the items stay pending).
        """
        return self._write(finish=False)

    def finish(self) -> None:
        """The run is over: flush, and mark the journal finished (see :class:`JournalState`).

        A finished journal takes no more writes (finishing it again does nothing).
        """
        self._usable()
        if self._finished:
            return
        self._write(finish=True)
        self._finished = True

    def _write(self, *, finish: bool) -> int:
        self._writable()
        if not (self._pending or finish):
            return 0
        return self.commit(self.take(), finish=finish)

    def due(self) -> bool:
        """Whether :meth:`maybe_flush` would flush now."""
        pending = self._pending
        return bool(pending) and (
            pending >= self.flush_rows or self._clock() - self._last >= self.flush_seconds
        )

    def take(self) -> _Batch:
        """What is pending, as a batch for :meth:`commit`; the buffer starts afresh.

        Call it from the thread that writes to the journal; :meth:`commit`
        may then run in another (``trio.to_thread``), while writes go on.
        """
        self._seal()
        admitted, rows = self._admitted, self._rows
        self._admitted, self._rows = [], []
        seq = self._seq
        done_rows: list[tuple[int, int | None, int | None, bytes | None, bytes | None, bytes]] = []
        failure_rows: list[tuple[int, int, bytes]] = []
        for row in rows:
            seq += 1
            if len(row) == 5:
                ids, first, last, outputs, sizes = row
                done_rows.append((seq, first, last, sizes, _pack(ids), outputs))
            else:
                index, blob = row
                failure_rows.append((seq, index, blob))
        self._seq = seq
        for chunk in admitted:
            self._span = max(self._span, chunk.last - chunk.first)
        admitted_rows = [
            (chunk.id, chunk.first, chunk.last, chunk.chunk_hash, chunk.value_hashes,
             _pack(chunk.ids))
            for chunk in admitted
        ]  # fmt: skip
        batch = _Batch(admitted_rows, done_rows, failure_rows, self._pending)
        self._pending = 0
        self._last = self._clock()
        return batch

    def commit(self, batch: _Batch, *, finish: bool = False) -> int:
        """Write ``batch`` (from :meth:`take`) in one transaction; how many items it held.

        Raises:
            JournalError: The file could not be written (those items are not in
                it: a rerun does them again).
        """
        conn = self._conn
        try:
            conn.execute("BEGIN")
            if batch.admitted:
                conn.executemany(
                    "INSERT INTO admitted_chunks "
                    "(id, first_index, last_index, chunk_hash, value_hashes, ids) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    batch.admitted,
                )
            if batch.done:
                conn.executemany(
                    "INSERT INTO done_chunks (id, first_index, last_index, sizes, ids, outputs) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                    batch.done,
                )
            if batch.failures:
                conn.executemany(
                    "INSERT INTO failures (id, idx, blob) VALUES (?, ?, ?)", batch.failures
                )
            if finish:
                conn.execute("UPDATE meta SET value = '1' WHERE key = 'finished'")
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.rollback()
            if isinstance(exc, sqlite3.Error):
                raise JournalError(f"cannot write the journal {self.path!r}: {exc}") from exc
            raise
        return batch.items

    def _writable(self) -> None:
        if self._closed:
            raise JournalError(f"the journal {self.path!r} is closed")
        if self._finished:
            raise JournalError(f"the journal {self.path!r} is finished: it takes no more writes")

    # ------------------------------------------------------------------ reading

    def _usable(self) -> None:
        if self._closed:
            raise JournalError(f"the journal {self.path!r} is closed")

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        """Flush and close the file (again: nothing)."""
        if self._closed:
            return
        try:
            if not self._finished:
                self.flush()
        finally:
            self._closed = True
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()  # what was journaled is true whatever ended the block

    def __repr__(self) -> str:
        state = "closed" if self._closed else f"{self.pending} items pending"
        return f"<Journal {self.path!r} of {self.signature!r}: {state}>"


def _unencodable(index: int, exc: Exception) -> None:
    log.warning(
        "journal: item %d cannot be encoded (%r): it is not journaled as done or failed, "
        "and a resumed run does it again",
        index, exc,
    )  # fmt: skip

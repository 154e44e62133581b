"""Reading a journal back: what a rerun resumes from, and whether its source is the same.

:class:`JournalReading` is the half of :class:`~._journal.Journal` that reads:
``state`` (what the earlier run finished, failed or had in flight) and
``check``/``check_many`` (the source's items against the fingerprints the
journal keeps). The SQL schema and the writing side are in ``_journal``.
"""

from __future__ import annotations

import bisect
import pickle
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any

from ._errors import Failure
from ._journal_rows import (
    _AFRESH,
    _CHANGED,
    _UNCHECKED,
    JournalError,
    JournalState,
    Outputs,
    _Admitted,
    _chunk_hash,
    _fingerprint,
    _ids,
    _listed,
    _same,
    _unpack,
)

__all__ = ["JournalReading"]


class JournalReading:
    """The reading half of a journal (mixed into :class:`~._journal.Journal`)."""

    # Set by Journal.__init__.
    path: str
    _conn: sqlite3.Connection
    _decode: Callable[[bytes], Any]
    _finished: bool
    _fingerprints: bool
    _span: int
    _admitted: list[_Admitted]
    _partial: dict[int, dict[int, bytes | None]]

    def flush(self) -> int:
        """Write what is pending (the writing half's)."""
        raise NotImplementedError

    def _usable(self) -> None:
        raise NotImplementedError

    def state(self) -> JournalState:
        """What the journal holds (pending items are flushed first).

        Raises:
            JournalError: A failure cannot be decoded, or the file cannot be read.
        """
        if not self._finished:
            self.flush()
        self._usable()
        conn = self._conn
        try:
            conn.execute("BEGIN")  # one snapshot for the three reads
            try:
                done_rows = conn.execute(
                    "SELECT id, first_index, last_index, sizes, ids, outputs "
                    "FROM done_chunks ORDER BY id"
                ).fetchall()
                failure_rows = conn.execute(
                    "SELECT id, idx, blob FROM failures ORDER BY id"
                ).fetchall()
                admitted_rows = conn.execute(
                    "SELECT first_index, last_index, ids FROM admitted_chunks"
                ).fetchall()
            finally:
                conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {self.path!r}: {exc}") from exc
        # Each done item's place among the outputs of all chunks, end to end:
        # a later chunk's replaces an earlier one's.
        slots: dict[int, int] = {}
        starts: list[int] = []
        seqs: list[int] = []
        chunks: list[tuple[bytes, bytes | None, int]] = []
        end = 0
        for seq, first, last, sizes, ids_blob, outputs in done_rows:
            ids = _unpack(ids_blob, first, last)
            slots.update(zip(ids, range(end, end + len(ids)), strict=True))
            starts.append(end)
            seqs.append(seq)
            chunks.append((outputs, sizes, len(ids)))
            end += len(ids)
        failed: dict[int, Failure] = {}
        for seq, index, blob in failure_rows:
            slot = slots.get(index)
            if slot is not None:
                if seqs[bisect.bisect_right(starts, slot) - 1] > seq:
                    continue  # done again after it failed
                del slots[index]
            failed[index] = self._failure(index, blob)
        admitted: set[int] = set()
        for first, last, ids_blob in admitted_rows:
            admitted.update(_unpack(ids_blob, first, last))
        admitted.difference_update(slots)
        admitted.difference_update(failed)
        outputs_ = Outputs(slots, starts, chunks, self._decode)
        return JournalState(outputs_, failed, admitted, self._finished)

    def _failure(self, index: int, blob: bytes) -> Failure:
        try:
            failure = self._decode(blob)
        except Exception as exc:
            raise JournalError(
                f"the journal {self.path!r}: the failure of item {index} cannot be decoded: {exc!r}"
            ) from exc
        if not isinstance(failure, Failure):
            raise JournalError(
                f"the journal {self.path!r}: item {index} is failed, but its blob decodes "
                f"to a {type(failure).__name__}, not a Failure"
            )
        return failure

    @property
    def finished(self) -> bool:
        """:meth:`finish` was called, in this process or by the run that wrote the file."""
        return self._finished

    def check(self, index: int, value: Any) -> None:
        """Is ``value`` the source item the journal recorded at ``index``?

        As :meth:`check_many` for one item: it is compared once the other
        items admitted with it have been checked too.

        Raises:
            JournalError: It is not: the source gives other items on this run.
        """
        self.check_many([index], [value])

    def check_many(self, ids: Sequence[int], values: Sequence[Any]) -> None:
        """Are ``values`` the source items the journal recorded at ``ids``?

        Each admitted chunk of the journal that holds some of ``ids`` is
        compared with them (best: the same chunks as the admissions, or
        consecutive ranges). A chunk of which only some items are given is
        compared once all of them have been, by this call and earlier ones:
        their values are kept (pickled) until then. An index the journal
        has no fingerprint of passes.

        Raises:
            JournalError: A chunk's values are not those recorded: naming its
                range (or the item, for a chunk of one item or one that
                pickle could not pickle whole), the lowest first.
        """
        self._usable()
        if len(ids) != len(values):
            raise ValueError(f"{len(ids)} ids but {len(values)} values")
        if not self._fingerprints or not len(ids):
            return
        packed, low, high = _ids(ids)
        try:
            rows = self._conn.execute(
                "SELECT id, first_index, last_index, chunk_hash, value_hashes, ids "
                "FROM admitted_chunks WHERE first_index BETWEEN ? AND ? AND last_index >= ? "
                "AND (chunk_hash IS NOT NULL OR value_hashes IS NOT NULL)",
                (low - self._span, high, low),
            ).fetchall()
        except sqlite3.Error as exc:
            raise JournalError(f"cannot read the journal {self.path!r}: {exc}") from exc
        chunks = [
            _Admitted(
                chunk_id, first, last, _unpack(ids_blob, first, last), chunk_hash, value_hashes
            )
            for chunk_id, first, last, chunk_hash, value_hashes, ids_blob in rows
        ]
        chunks += [
            chunk
            for chunk in self._admitted
            if chunk.first <= high
            and chunk.last >= low
            and (chunk.chunk_hash is not None or chunk.value_hashes is not None)
        ]
        if not chunks:
            return
        chunks.sort(key=lambda chunk: (chunk.first, chunk.id))
        listed = _listed(values)
        given: dict[int, Any] | None = None
        for chunk in chunks:
            if chunk.chunk_hash is not None and _same(chunk.ids, packed):  # the same chunk
                self._partial.pop(chunk.id, None)
                if _chunk_hash(listed) != chunk.chunk_hash:
                    raise self._changed(chunk)
                continue
            if given is None:
                given = dict(zip(packed, listed, strict=True))
            if chunk.chunk_hash is not None:
                self._check_part(chunk, given)
            else:
                assert chunk.value_hashes is not None
                hashes = chunk.value_hashes
                for place, index in enumerate(chunk.ids):
                    if index in given:
                        recorded = hashes[8 * place : 8 * place + 8]
                        fingerprint = _fingerprint(given[index])
                        if _UNCHECKED not in (recorded, fingerprint) and recorded != fingerprint:
                            raise self._changed(None, index)

    def _check_part(self, chunk: _Admitted, given: dict[int, Any]) -> None:
        """Compare a chunk given in part now, and maybe in part by earlier checks."""
        kept = self._partial.get(chunk.id)
        if kept is None and all(index in given for index in chunk.ids):
            values = [given[index] for index in chunk.ids]
        else:
            if kept is None:
                kept = self._partial[chunk.id] = {}
            for index in chunk.ids:
                if index in given:
                    try:
                        kept[index] = pickle.dumps(given[index], protocol=5)
                    except Exception:
                        kept[index] = None  # cannot be the value recorded, which pickled
            if not all(index in kept for index in chunk.ids):
                return  # not complete yet
            del self._partial[chunk.id]
            if None in kept.values():
                raise self._changed(chunk)
            values = [
                given[index] if index in given else pickle.loads(kept[index])  # type: ignore[arg-type]
                for index in chunk.ids
            ]
        if _chunk_hash(values) != chunk.chunk_hash:
            raise self._changed(chunk)

    def _changed(self, chunk: _Admitted | None, index: int = 0) -> JournalError:
        """The error for a chunk that differs, or (``chunk`` None) an item."""
        low, high = (index, index) if chunk is None else (chunk.first, chunk.last)
        if low == high:
            return JournalError(
                f"the journal {self.path!r} recorded another source item at index {low}: "
                f"{_CHANGED} {_AFRESH}"
            )
        assert chunk is not None
        count = len(chunk.ids)
        which = f"items {low}..{high}" if high - low + 1 == count else (
            f"the {count} items admitted together in {low}..{high}"
        )  # fmt: skip
        return JournalError(
            f"the journal {self.path!r} recorded other source items at indexes {low}..{high}: "
            f"one of {which} differs (the journal keeps one fingerprint for the items "
            f"admitted together): {_CHANGED} {_AFRESH}"
        )

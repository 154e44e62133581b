"""The journal's rows and what reads them back: packed ids, fingerprints, encoded outputs.

Everything here is pure (no SQL): how a chunk of ids is kept (a range as its
bounds, else a packed array), how a chunk of source values is fingerprinted,
how outputs are encoded, and :class:`Outputs` / :class:`JournalState`, what
``Journal.state`` gives a rerun.
"""

from __future__ import annotations

import bisect
import hashlib
import io
import pickle
import sys
import zlib
from array import array
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, NamedTuple, TypeAlias

import attrs
import cloudpickle

from .._errors import TrimqError
from ._errors import Failure

_AFRESH = "To start afresh, delete the file or pass another path."
_CHANGED = (
    "the source does not give the same items in the same order on this run, "
    "so the run cannot resume from the journal."
)

__all__ = ["JournalError", "JournalState", "Outputs", "dumps"]

#: The fingerprint of a value pickle cannot pickle, among a chunk's per-value ones.
_UNCHECKED = bytes(8)
#: How many decoded chunks of outputs an :class:`Outputs` keeps.
_CACHED_CHUNKS = 16


class JournalError(TrimqError):
    """A journal cannot be opened, written, or does not match the run.

    .. versionadded:: 0.1
    """


def dumps(obj: Any) -> bytes:
    """``pickle.dumps`` (protocol 5), or ``cloudpickle.dumps`` for what pickle cannot.

    Several times faster than cloudpickle for plain data; ``pickle.loads``
    decodes both. Functions and classes that pickle can reach by name are
    stored by name, as cloudpickle stores them too, except those of
    ``__main__``, which a rerun of the same program defines again.
    """
    try:
        return pickle.dumps(obj, protocol=5)
    except Exception:
        data: bytes = cloudpickle.dumps(obj, protocol=5)
        return data


# ---------------------------------------------------------------- packing

_SWAP = sys.byteorder == "big"  # the file is little-endian wherever it is written


#: A chunk's indexes: a range when they are one (stored as its bounds), else packed.
_Ids: TypeAlias = "range | array[int]"


def _done_ids(ids: Sequence[int]) -> tuple[_Ids, int | None, int | None]:
    """A done chunk's indexes (not none), and their bounds if they are a range."""
    if type(ids) is range and ids.step == 1:
        return ids, ids.start, ids.stop - 1
    return array("q", ids), None, None


def _ids(ids: Sequence[int]) -> tuple[_Ids, int, int]:
    """An admitted chunk's indexes (not none), and the lowest and highest of them."""
    if type(ids) is range and ids.step == 1:
        return ids, ids.start, ids.stop - 1
    packed = array("q", ids)
    scanned = ids if type(ids) is list else packed  # a list's ints are already boxed
    return packed, min(scanned), max(scanned)


def _pack(ids: _Ids) -> bytes | None:
    if type(ids) is range:
        return None
    if _SWAP:
        ids = array("q", ids)
        ids.byteswap()
    return ids.tobytes()


def _unpack(blob: bytes | None, first: int | None, last: int | None) -> _Ids:
    if blob is None:
        assert first is not None
        assert last is not None
        return range(first, last + 1)
    ids = array("q")
    ids.frombytes(blob)
    if _SWAP:
        ids.byteswap()
    return ids


def _sizes(blob: bytes) -> array[int]:
    sizes = _unpack(blob, 0, 0)
    assert isinstance(sizes, array)
    return sizes


def _same(ids: _Ids, other: _Ids) -> bool:
    if type(ids) is type(other):
        return ids == other
    return len(ids) == len(other) and array("q", ids) == array("q", other)


def _listed(values: Sequence[Any]) -> list[Any]:
    return values if type(values) is list else list(values)


# ---------------------------------------------------------------- fingerprints


def _chunk_hash(values: list[Any]) -> bytes | None:
    """The fingerprint of a chunk's values, or None if pickle cannot pickle them."""
    buffer = io.BytesIO()
    pickler = pickle.Pickler(buffer, protocol=5)
    pickler.fast = True  # no memo: objects shared or not pickle alike
    try:
        pickler.dump(values)
    except Exception:  # unpicklable, or cyclic (fast mode refuses cycles)
        return None
    # A consistency check, not a defence against forgery: two fast checksums
    # (8 bytes) cost half of BLAKE2b on a chunk of small items.
    data = buffer.getbuffer()
    return zlib.crc32(data).to_bytes(4, "big") + zlib.adler32(data).to_bytes(4, "big")


def _fingerprint(value: Any) -> bytes:
    """One value's fingerprint, for a chunk that pickle cannot pickle whole."""
    try:
        data = pickle.dumps(value, protocol=5)
    except Exception:
        return _UNCHECKED
    return hashlib.blake2b(data, digest_size=8).digest() or _UNCHECKED


class _Admitted(NamedTuple):
    """An admitted chunk, pending or read back for a check."""

    id: int
    first: int
    last: int
    ids: _Ids
    chunk_hash: bytes | None
    value_hashes: bytes | None


# ---------------------------------------------------------------- reading back


class Outputs(Mapping[int, Any]):
    """The done items' outputs by source index, decoded as they are read.

    Iterating gives the indexes in increasing order. The outputs done
    together are decoded together, when the first of them is read, and the
    last chunks decoded are kept (reading an item twice may give the same
    object). A blob that cannot be decoded raises :class:`JournalError`
    when it is read.
    """

    __slots__ = ("_cache", "_chunks", "_decode", "_order", "_slots", "_starts")

    def __init__(
        self,
        slots: dict[int, int],
        starts: list[int],
        chunks: list[tuple[bytes, bytes | None, int]],
        decode: Callable[[bytes], Any],
    ) -> None:
        # slots: index -> its place among all the chunks' outputs, end to end;
        # starts: each chunk's first place; chunks: (outputs, sizes, length).
        self._slots = slots
        self._starts = starts
        self._chunks = chunks
        self._decode = decode
        self._cache: dict[int, list[Any] | array[int]] = {}
        self._order: list[int] | None = None

    def __getitem__(self, index: int) -> Any:
        slot = self._slots[index]
        chunk = bisect.bisect_right(self._starts, slot) - 1
        place = slot - self._starts[chunk]
        blob, sizes, length = self._chunks[chunk]
        cached = self._cache.get(chunk)
        try:
            if sizes is None:  # one list
                if cached is None:
                    cached = self._decode(blob)
                    if not isinstance(cached, list | tuple) or len(cached) != length:
                        raise TypeError(
                            f"the chunk decodes to a {type(cached).__name__}, "
                            f"not a list of {length} outputs"
                        )
                    self._keep(chunk, cached)
                return cached[place]
            if cached is None:  # blobs end to end: their offsets
                cached = array("q", [0])
                for size in _sizes(sizes):
                    cached.append(cached[-1] + size)
                self._keep(chunk, cached)
            return self._decode(blob[cached[place] : cached[place + 1]])
        except Exception as exc:
            raise JournalError(
                f"the journal's outputs of item {index} cannot be decoded: {exc!r}"
            ) from exc

    def _keep(self, chunk: int, decoded: list[Any] | array[int]) -> None:
        cache = self._cache
        if len(cache) >= _CACHED_CHUNKS:
            del cache[next(iter(cache))]
        cache[chunk] = decoded

    def __contains__(self, index: object) -> bool:
        return index in self._slots

    def __iter__(self) -> Iterator[int]:
        if self._order is None:
            self._order = sorted(self._slots)
        return iter(self._order)

    def __len__(self) -> int:
        return len(self._slots)

    def __repr__(self) -> str:
        return f"<Outputs of {len(self._slots)} items>"


@attrs.frozen
class JournalState:
    """What a journal holds: what a rerun needs to resume.

    Attributes:
        completed: The done items' outputs by source index, as they were
            given to :meth:`Journal.done` (decoded when read).
        failed: The failed items' :class:`~trimq.pipelines.Failure` by source index.
        admitted: The items that were in flight: a rerun does them again.
        finished: :meth:`Journal.finish` was called: the run is over, and
            ``completed`` and ``failed`` are all of it.
    """

    completed: Outputs
    failed: dict[int, Failure]
    admitted: set[int]
    finished: bool

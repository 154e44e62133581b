"""The serialization seam: how a payload becomes frames when it leaves the process.

Within a node nothing is encoded (messages pass as objects). A message for
another process goes through a :class:`Codec`, as two frames: a one-byte tag
naming the encoding, and the data.

Encodings
---------

The default codec picks, per payload, the cheapest encoding that keeps it
intact:

* ``b"b"`` -- bytes: the payload itself, untouched (no copy, no encoding).
* ``b"p"`` -- plain data: None, bool, int, float, str, bytes, bytearray, and
  lists, tuples, dicts, sets and frozensets of them, nested, of those *exact*
  types (a subclass of any of them is not plain). MessagePack; decoding builds
  nothing but those types, whoever sent the data, and within the budgets of
  :class:`PlainLimits` when the sender is not trusted with code.
* ``b"a"`` -- a call's arguments: a 2-tuple of a tuple and a dict whose keys
  are all str, ``(args, kwargs)``. The same MessagePack as ``b"p"``, written
  as an array of an array and a map and decoded into that shape by msgspec
  itself: one encoding pass and one decoding pass, where a tuple of a tuple
  would need one per level. Within the same budgets.
* ``b"c"`` -- anything else (classes, functions, exceptions, instances,
  complex numbers, subclasses of the plain types): cloudpickle, which ships
  code by value. Decoding it runs code chosen by the sender, so it is refused
  unless the caller passes ``allow_code=True`` (distributed nodes do so only
  for authenticated, allowed peers).

How plain data is written (MessagePack, with extension types for tuples,
sets and the rest) is described in ``_plain``; what decoding it refuses
from a peer not trusted with code (depth, count, size and hash-collision
budgets, :class:`PlainLimits`) in ``_plain_scan``.
"""

from __future__ import annotations

import pickle
from typing import Final, Protocol

import cloudpickle

from ._errors import CodecError
from ._plain import NotPlain, PlainFormat
from ._plain_scan import DEFAULT_LIMITS, PlainLimits

__all__ = ["Codec", "CodecError", "DefaultCodec", "PlainLimits"]

RAW: Final = b"b"
PLAIN: Final = b"p"
ARGUMENTS: Final = b"a"
CODE: Final = b"c"


class Codec(Protocol):
    """Turns payloads into frames and back, for messages that leave the process.

    Implement it to plug in another encoding; a node uses the codec given to
    :func:`~trimq.actors.open_node`.

    .. versionadded:: 0.1
    """

    def encode(self, obj: object) -> tuple[bytes, bytes]:
        """Return ``(tag, data)``; raise :class:`CodecError` if ``obj`` cannot travel."""
        ...

    def decode(self, tag: bytes, data: bytes, *, allow_code: bool = False) -> object:
        """Rebuild a payload.

        Raises:
            CodecError: Unknown tag, corrupt data, data over the budgets, or
                code while ``allow_code`` is false.
        """
        ...


class DefaultCodec:
    """Bytes untouched, plain data as MessagePack, everything else by cloudpickle.

    Plain data (None, bool, int, float, str, bytes, bytearray, and lists,
    tuples, dicts, sets and frozensets of them, of those exact types) comes
    back with the same types at every level. From a peer not trusted with
    code it is decoded within ``limits``: nesting depth, number of values,
    decoded size at most ``size_factor`` times the frame's plus
    ``size_slack``, and few repeated hashes in a set or among a dict's keys,
    so that no frame can cost more than linear time or a small multiple of
    its size in memory. An instance holds no per-call state, so threads may
    share it.

    Args:
        limits: The budgets for plain data from peers not trusted with code
            (the encoder keeps to their depth and item count).

    Example::

        codec = DefaultCodec()
        tag, data = codec.encode({"n": 1})
        assert codec.decode(tag, data) == {"n": 1}

    .. versionadded:: 0.1
    """

    def __init__(self, *, limits: PlainLimits = DEFAULT_LIMITS) -> None:
        self.limits: Final = limits
        self._plain = PlainFormat(limits)

    def encode(self, obj: object) -> tuple[bytes, bytes]:
        """Encode ``obj`` (see the module docs for which encoding it gets).

        Raises:
            CodecError: Even cloudpickle cannot encode it (a lock, an open
                socket), or plain data nested too deeply or too big.
        """
        cls = obj.__class__
        if cls is bytes:
            return RAW, obj  # type: ignore[return-value]
        try:
            if cls is tuple:
                data = self._plain.encode_arguments(obj)  # type: ignore[arg-type]
                if data is not None:
                    return ARGUMENTS, data
            return PLAIN, self._plain.encode(obj)
        except NotPlain:
            pass
        try:
            return CODE, cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise CodecError(
                f"cannot encode {type(obj).__name__} for another process: {exc}"
            ) from exc

    def decode(self, tag: bytes, data: bytes, *, allow_code: bool = False) -> object:
        """Rebuild what :meth:`encode` made.

        Raises:
            CodecError: See :meth:`Codec.decode` and the module docs.
        """
        if tag == RAW:
            return data
        if tag == ARGUMENTS:
            return self._plain.decode_arguments(data, trusted=allow_code)
        if tag == PLAIN:
            return self._plain.decode(data, trusted=allow_code)
        if tag != CODE:
            raise CodecError(f"unknown payload encoding {tag!r}")
        if not allow_code:
            raise CodecError(
                "refusing to unpickle code from a peer that is not trusted with it "
                "(an unauthenticated connection, or one whose key may not send code)"
            )
        try:
            return pickle.loads(data)
        except Exception as exc:
            # Corrupt data raises all sorts (UnpicklingError, EOFError, ValueError,
            # TypeError...), and so may the sender's code.
            raise CodecError(f"cannot decode a 'c' payload: {exc!r}") from exc

"""The serialization seam: how a payload becomes frames when it leaves the process.

Within a node nothing is encoded (messages pass as objects). A message for
another process goes through a :class:`Codec`, as two frames: a one-byte tag
naming the encoding, and the data.

The default codec picks, per payload, the cheapest encoding that keeps it
intact:

* ``b"b"`` -- bytes: the payload itself, untouched (no copy, no encoding).
* ``b"p"`` -- plain data (None, bool, int, float, str, bytes, bytearray, and
  lists, tuples, dicts, sets and frozensets of them, nested): the C pickler, checked
  by its own ``reducer_override`` hook, which CPython calls only for objects
  that are not of those exact types. Decoding refuses every global, so it
  builds nothing but those types, whoever sent the data.
* ``b"c"`` -- anything else (classes, functions, exceptions, instances):
  cloudpickle, which ships code by value. Decoding it runs code chosen by the
  sender, so it is refused unless the caller passes ``allow_code=True``
  (distributed nodes do so only for authenticated, allowed peers).
"""

from __future__ import annotations

import io
import pickle
from typing import Any, Final, Protocol

import cloudpickle

from .._errors import TrimqError

__all__ = ["Codec", "CodecError", "DefaultCodec", "decode_plain", "encode_plain"]

RAW: Final = b"b"
PLAIN: Final = b"p"
CODE: Final = b"c"


class CodecError(TrimqError, ValueError):
    """A payload could not be encoded, or frames could not be decoded.

    .. versionadded:: 0.1
    """


class Codec(Protocol):
    """Turns payloads into frames and back, for messages that leave the process.

    Implement it to plug in another encoding (msgpack, say); a node uses the
    codec given to :func:`~trimq.actors.open_node`.

    .. versionadded:: 0.1
    """

    def encode(self, obj: object) -> tuple[bytes, bytes]:
        """Return ``(tag, data)``; raise :class:`CodecError` if ``obj`` cannot travel."""
        ...

    def decode(self, tag: bytes, data: bytes, *, allow_code: bool = False) -> object:
        """Rebuild a payload.

        Raises:
            CodecError: Unknown tag, corrupt data, or code (a pickle that
                names classes or functions) while ``allow_code`` is false.
        """
        ...


class _NotPlain(Exception):
    pass


class _PlainPickler(pickle.Pickler):
    # CPython skips this hook for exact None/bool/int/float/bytes/str/list/
    # tuple/dict/set/frozenset: anything that reaches it is not plain data.
    def reducer_override(self, obj: Any) -> Any:
        raise _NotPlain


class _PlainUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        raise CodecError(
            f"plain data may not name {module}.{name}: the sender encoded code "
            "with the plain-data tag (a bug or a forgery)"
        )

    def persistent_load(self, pid: Any) -> Any:
        raise CodecError("plain data may not hold persistent references")


def encode_plain(obj: object) -> bytes:
    """Encode plain data only (see the module docs); used for protocol headers.

    Raises:
        CodecError: ``obj`` is not plain data.
    """
    out = io.BytesIO()
    try:
        _PlainPickler(out, protocol=pickle.HIGHEST_PROTOCOL).dump(obj)
    except (_NotPlain, RecursionError) as exc:
        raise CodecError(f"not plain data: {type(obj).__name__}") from exc
    return out.getvalue()


def decode_plain(data: bytes) -> object:
    """Decode what :func:`encode_plain` made; builds only plain data, whoever sent it.

    Raises:
        CodecError: Corrupt data, or data that names code.
    """
    try:
        return _PlainUnpickler(io.BytesIO(data)).load()
    except CodecError:
        raise
    except Exception as exc:
        raise CodecError(f"cannot decode plain data: {exc!r}") from exc


class DefaultCodec:
    """Bytes untouched, plain data by the C pickler, everything else by cloudpickle.

    An instance reuses one pickler (making one costs as much as the encoding),
    so give each thread its own; a node uses its codec from its trio thread only.

    Example::

        codec = DefaultCodec()
        tag, data = codec.encode({"n": 1})
        assert codec.decode(tag, data) == {"n": 1}

    .. versionadded:: 0.1
    """

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._pickler = _PlainPickler(self._out, protocol=pickle.HIGHEST_PROTOCOL)

    def encode(self, obj: object) -> tuple[bytes, bytes]:
        """Encode ``obj`` (see the module docs for which encoding it gets).

        Raises:
            CodecError: Even cloudpickle cannot encode it (a lock, an open socket).
        """
        if obj.__class__ is bytes:
            return RAW, obj
        out = self._out
        out.seek(0)
        out.truncate()
        self._pickler.clear_memo()
        try:
            self._pickler.dump(obj)
            return PLAIN, out.getvalue()
        except _NotPlain:
            pass
        except RecursionError as exc:
            raise CodecError(f"cannot encode {type(obj).__name__}: nested too deeply") from exc
        try:
            return CODE, cloudpickle.dumps(obj, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            raise CodecError(
                f"cannot encode {type(obj).__name__} for another process: {exc}"
            ) from exc

    def decode(self, tag: bytes, data: bytes, *, allow_code: bool = False) -> object:
        """Rebuild what :meth:`encode` made.

        Raises:
            CodecError: See :meth:`Codec.decode`.
        """
        if tag == RAW:
            return data
        if tag == PLAIN:
            return decode_plain(data)
        if tag == CODE:
            if not allow_code:
                raise CodecError(
                    "refusing to unpickle code from a peer that is not trusted with it "
                    "(an unauthenticated connection, or one whose key may not send code)"
                )
            unpickler = pickle.Unpickler(io.BytesIO(data))
        else:
            raise CodecError(f"unknown payload encoding {tag!r}")
        try:
            return unpickler.load()
        except Exception as exc:
            # Corrupt data raises all sorts (UnpicklingError, EOFError, ValueError,
            # TypeError...), and so may the sender's code.
            kind = tag.decode(errors="replace")
            raise CodecError(f"cannot decode a {kind!r} payload: {exc!r}") from exc

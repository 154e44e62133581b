"""What plain data from a peer not trusted with code may cost, checked before it is decoded.

Decoding with ``allow_code=False`` (a peer without the ``code`` right, or an
unauthenticated connection) first scans the frame, in Python, in one linear
pass with an explicit stack, and refuses it (:class:`CodecError`, naming the
limit) before the C decoder allocates anything, when:

* containers (lists, tuples, dicts, sets: one level each) nest deeper than
  :attr:`PlainLimits.max_depth` (64);
* the frame holds more than :attr:`PlainLimits.max_items` values (2**21);
* a native map has a key that is not a str (int and float hashes are not
  randomized: many colliding keys would take quadratic time), or a dict
  extension an odd number of items;
* the estimated size of the decoded objects exceeds
  :attr:`PlainLimits.size_factor` (64) times the frame's length plus
  :attr:`PlainLimits.size_slack` (64 KiB), so a frame of a million empty maps
  (1 MiB, some 190 MiB once decoded) is refused. The estimate errs high:
  a list or tuple 64 B + 16 B an item, a native map 184 B + 40 B a pair, a
  dict extension 232 B + 64 B a pair, a set 216 B + 128 B an element, a str
  80 B + 4 B per byte (0 for the one-character and empty strs CPython
  shares), bytes 33 B + 1 B per byte, a bytearray 64 B + 1 B per byte, an
  int or float 40 B (0 for 0..127, which CPython shares), a big int 40 B +
  2 B per byte of data, None and bools nothing; an extension's array counts
  once more, as the list it is decoded from;
* a declared length or count runs past the data (or past its extension),
  the data stops in the middle of a value, bytes follow the value, an
  extension's data is not exactly one value of its kind, or a type byte or
  extension code is not one of the above.

Then, while rebuilding a set, a frozenset or a dict extension, it refuses
(:class:`CodecError`) one whose elements have more than
:attr:`PlainLimits.max_collisions` (64) repeated hash values, so a set of
80 000 ints that all hash to 0 costs linear time, not half a minute; and an
element that cannot be hashed (a list in a set) is a :class:`CodecError` too.
Nothing but :class:`CodecError` comes out of :meth:`DefaultCodec.decode`.

A frame of at most ``min(max_depth, max_items, size_slack // 512)`` bytes (64
by default) cannot exceed the depth, item or size budgets (no value's
estimate reaches 512 B per byte of it), so unless it holds a 0xff byte (which
may be MessagePack's timestamp extension) it skips the scan and goes straight
to the C decoder, which refuses malformed data as well. The one rule this
relaxes is the str keys of native maps: such a frame holds at most 32 keys,
too few to flood a dict, and a map of int keys in it decodes to the dict it
is. Messages this short (a call's arguments, a small dict) thus cost no more
to decode than from a trusted peer.

With ``allow_code=True`` the scan is skipped (such a peer may run code
anyway); decoding stays correct, and corrupt data is still a
:class:`CodecError`.
"""

from __future__ import annotations

import re
import struct
from typing import Any, Final

import attrs

from ._errors import CodecError

__all__ = ["DEFAULT_LIMITS", "MAX_COST", "PlainLimits", "refuse", "scan"]

EXT_TUPLE: Final = 1
EXT_SET: Final = 2
EXT_FROZENSET: Final = 3
EXT_DICT: Final = 4
EXT_BYTEARRAY: Final = 5
EXT_INT: Final = 6


@attrs.frozen(kw_only=True)
class PlainLimits:
    """What a plain-data frame from a peer not trusted with code may cost.

    See the module docs for how each is counted. The defaults suit messages
    between actors; raise them on both sides for bulk data.

    Raises:
        ValueError: A limit below 1 (``size_slack``, ``max_collisions``: below 0).

    .. versionadded:: 0.1
    """

    max_depth: int = 64
    """Containers nested in one another, the outermost counting 1."""
    max_items: int = 2**21
    """Values in a frame, containers and their contents alike."""
    size_factor: int = 64
    """Decoded size estimate allowed per byte of frame..."""
    size_slack: int = 64 * 1024
    """...plus this many bytes."""
    max_collisions: int = 64
    """Repeated hash values allowed among a set's elements or a dict's keys."""

    def __attrs_post_init__(self) -> None:
        for name in ("max_depth", "max_items", "size_factor"):
            if getattr(self, name) < 1:
                raise ValueError(
                    f"PlainLimits.{name} must be at least 1, got {getattr(self, name)}"
                )
        for name in ("size_slack", "max_collisions"):
            if getattr(self, name) < 0:
                raise ValueError(
                    f"PlainLimits.{name} cannot be negative, got {getattr(self, name)}"
                )


DEFAULT_LIMITS: Final = PlainLimits()


_NUMBER: Final = 40  # estimated size of an int or a float
# Per type byte: the width of a fixed-width value (type byte included), or 0.
_WIDTH = [0] * 256
# Per type byte of a fixed-width value: its estimated decoded size.
_COST = [0] * 256
for _b in range(0x80):
    _WIDTH[_b] = 1  # positive fixint; 0..127 are shared by CPython
for _b in range(0xE0, 0x100):
    _WIDTH[_b], _COST[_b] = 1, _NUMBER  # negative fixint
for _b in (0xC0, 0xC2, 0xC3):
    _WIDTH[_b] = 1  # nil, false, true
for _b in range(0xA0, 0xC0):
    _n = _b & 0x1F
    _WIDTH[_b], _COST[_b] = 1 + _n, (0 if _n <= 1 else 80 + 4 * _n)  # fixstr
for _b, _w in ((0xCA, 5), (0xCB, 9), (0xCC, 2), (0xCD, 3), (0xCE, 5), (0xCF, 9)):
    _WIDTH[_b], _COST[_b] = _w, _NUMBER  # float32, float64, uint8..uint64
for _b, _w in ((0xD0, 2), (0xD1, 3), (0xD2, 5), (0xD3, 9)):
    _WIDTH[_b], _COST[_b] = _w, _NUMBER  # int8..int64
# Per type byte of anything else: what it is.
_ARRAY, _MAP, _STR, _BIN, _EXT, _BAD = 1, 2, 3, 4, 5, 0
_KIND = [_BAD] * 256
for _b in range(0x80, 0x90):
    _KIND[_b] = _MAP
for _b in range(0x90, 0xA0):
    _KIND[_b] = _ARRAY
for _b, _k in (
    *((b, _EXT) for b in range(0xC7, 0xCA)),
    *((b, _EXT) for b in range(0xD4, 0xD9)),
    *((b, _BIN) for b in range(0xC4, 0xC7)),
    *((b, _STR) for b in range(0xD9, 0xDC)),
    (0xDC, _ARRAY),
    (0xDD, _ARRAY),
    (0xDE, _MAP),
    (0xDF, _MAP),
):
    _KIND[_b] = _k
# Per type byte with a length or count after it: (bytes of it, how to read them);
# per fixext type byte: (0, its data length).
_U8 = struct.Struct(">B").unpack_from
_U16 = struct.Struct(">H").unpack_from
_U32 = struct.Struct(">I").unpack_from
_LENGTH: dict[int, tuple[int, Any]] = {
    0xC4: (1, _U8),
    0xC5: (2, _U16),
    0xC6: (4, _U32),
    0xC7: (1, _U8),
    0xC8: (2, _U16),
    0xC9: (4, _U32),
    0xD9: (1, _U8),
    0xDA: (2, _U16),
    0xDB: (4, _U32),
    0xDC: (2, _U16),
    0xDD: (4, _U32),
    0xDE: (2, _U16),
    0xDF: (4, _U32),
    **{b: (0, 1 << (b - 0xD4)) for b in range(0xD4, 0xD9)},
}
# Per ext code of a container: its estimated size less its array's, (base, per item).
_EXT_COST: list[tuple[int, int] | None] = [None] * 256
_EXT_COST[EXT_TUPLE] = (40, 8)
_EXT_COST[EXT_SET] = _EXT_COST[EXT_FROZENSET] = (216, 128)
_EXT_COST[EXT_DICT] = (232, 32)  # per item of the flat array: 64 a pair
_IS_STR = bytes(1 if 0xA0 <= b <= 0xBF or 0xD9 <= b <= 0xDB else 0 for b in range(256))
_BYTE = [bytes((b,)) for b in range(256)]
_NOT_FIXINT = re.compile(rb"[\x80-\xff]")
_RUN: Final = 8  # arrays with more values left than this try the run shortcut


# No value's estimate exceeds this per byte of it (an empty map in a set: 328).
MAX_COST: Final = 512


def refuse(what: str) -> CodecError:
    """The error for plain data from a peer over a budget: ``what`` says which."""
    return CodecError(f"plain data from the peer refused: {what}")


def _truncated(pos: int) -> CodecError:
    return refuse(f"truncated data (a value at byte {pos} runs past its end)")


def _overlong(what: str, declared: str, left: int, pos: int) -> CodecError:
    return refuse(f"{what} at byte {pos} declares {declared} but only {left} bytes remain")


def scan(data: bytes, limits: PlainLimits) -> None:
    """Check a frame against ``limits`` without building anything; see the module docs.

    One pass, iterative; every step reads at least one byte or closes a
    container, so it takes time linear in ``len(data)``.
    """
    size = len(data)
    max_depth = limits.max_depth
    width = _WIDTH
    costs = _COST
    is_str = _IS_STR
    run = _RUN
    # The container being read: values left in it, where its data must stop,
    # whether it is a map (keys come at even counts left), where its extension
    # ends (-1: it is not an extension's array).
    left, limit, is_map, ext_end = 1, size, False, -1
    stack: list[tuple[int, int, bool, int]] = []
    pos = items = cost = 0
    while True:
        if not left:
            if ext_end >= 0 and pos != ext_end:
                raise refuse(f"an extension's data does not end with its array (byte {pos})")
            if not stack:
                break
            left, limit, is_map, ext_end = stack.pop()
            continue
        if pos >= limit:
            raise _truncated(pos)
        b = data[pos]
        if is_map and not left & 1 and not is_str[b]:
            raise refuse(
                f"a map key that is not a str (byte {pos}; other keys need a dict extension)"
            )
        w = width[b]
        if w:
            if left > run and not is_map:
                # A run of values of the same width: skipped at C speed.
                if b < 0x80:
                    stop = min(limit, pos + left)
                    match = _NOT_FIXINT.search(data, pos, stop)
                    k = (match.start() if match else stop) - pos
                else:
                    same = data[pos : min(limit, pos + w * left) : w]
                    k = min(len(same) - len(same.lstrip(_BYTE[b])), (limit - pos) // w)
                    if not k:
                        raise _truncated(pos)
                left -= k
                items += k
                pos += w * k
                cost += k * costs[b]
                continue
            left -= 1
            items += 1
            pos += w
            cost += costs[b]
            if pos > limit:
                raise _truncated(pos - w)
            continue
        left -= 1
        items += 1
        kind = _KIND[b]
        start = pos
        if kind in (_ARRAY, _MAP):
            if b < 0xA0:
                count = b & 0x0F
                pos += 1
            else:
                n, unpack = _LENGTH[b]
                if pos + 1 + n > limit:
                    raise _truncated(pos)
                count = unpack(data, pos + 1)[0]
                pos += 1 + n
            if kind == _MAP:
                slots = 2 * count
                cost += 184 + 40 * count
            else:
                slots = count
                cost += 64 + 16 * count
            if slots > limit - pos:
                raise _overlong("a container", f"{count} items", limit - pos, start)
            if len(stack) >= max_depth:
                raise refuse(f"nested deeper than {max_depth} levels (PlainLimits.max_depth)")
            if slots:
                stack.append((left, limit, is_map, ext_end))
                left, is_map, ext_end = slots, kind == _MAP, -1
            continue
        if kind == _BAD:
            raise refuse(f"unknown type byte 0x{b:02x} (byte {pos})")
        n, unpack = _LENGTH[b]
        if pos + 1 + n > limit:
            raise _truncated(pos)
        length = unpack(data, pos + 1)[0] if n else unpack
        pos += 1 + n
        if kind != _EXT:  # str or bin
            if length > limit - pos:
                raise _overlong("a str or bytes", f"{length} bytes", limit - pos, start)
            pos += length
            if kind == _BIN:
                cost += 33 + length
            elif length > 1:
                cost += 80 + 4 * length
            continue
        if pos >= limit:
            raise _truncated(start)
        code = data[pos]
        pos += 1
        if length > limit - pos:
            raise _overlong("an extension", f"{length} bytes", limit - pos, start)
        end = pos + length
        per_code = _EXT_COST[code]
        if per_code is None:
            if code == EXT_BYTEARRAY:
                cost += 64 + length
            elif code == EXT_INT:
                cost += _NUMBER + 2 * length
            else:
                raise refuse(f"unknown extension code {code - 256 if code > 127 else code}")
            pos = end
            continue
        # A container: its data is one array, which counts one level.
        b = data[pos] if pos < end else 0xC1
        if 0x90 <= b <= 0x9F:
            count = b & 0x0F
            pos += 1
        elif (b == 0xDC or b == 0xDD) and pos + 1 + _LENGTH[b][0] <= end:
            count = _LENGTH[b][1](data, pos + 1)[0]
            pos += 1 + _LENGTH[b][0]
        else:
            raise refuse(f"an extension of code {code} whose data is not an array (byte {pos})")
        if count > end - pos:
            raise _overlong("an extension's array", f"{count} items", end - pos, start)
        if count & 1 and code == EXT_DICT:
            raise refuse(f"a dict extension with an odd number of items (byte {start})")
        base, per = per_code
        cost += base + 64 + (per + 16) * count
        if len(stack) >= max_depth:
            raise refuse(f"nested deeper than {max_depth} levels (PlainLimits.max_depth)")
        stack.append((left, limit, is_map, ext_end))
        left, limit, is_map, ext_end = count, end, False, end
    if pos != size:
        raise refuse(f"{size - pos} bytes after the value (from byte {pos})")
    if items > limits.max_items:
        raise refuse(f"{items} values, over PlainLimits.max_items = {limits.max_items}")
    budget = limits.size_factor * size + limits.size_slack
    if cost > budget:
        raise refuse(
            f"its {size} bytes would take some {cost} bytes decoded, over the budget of "
            f"{budget} (PlainLimits.size_factor x length + size_slack)"
        )

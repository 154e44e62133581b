"""The plain-data encoding (tag ``b"p"``): MessagePack that rebuilds only plain Python data.

One MessagePack value (https://msgpack.org/), nothing after it. These types
are MessagePack's own: None (nil), bool, int from ``-2**63`` to ``2**64 - 1``,
float (float 64; float 32 is accepted), str, bytes (bin), list (array) and a
dict whose keys are all str (map). Every other plain type is an extension
(ext) value whose data is again MessagePack:

=====  ===========  =====================================================
code   type         ext data
=====  ===========  =====================================================
1      tuple        an array of the items
2      set          an array of the elements
3      frozenset    an array of the elements
4      dict         an array of the keys and values, flat: ``k0, v0, k1, v1``;
                    used for every dict with at least one key that is not str
5      bytearray    the bytes themselves
6      int          beyond 64 bits: big-endian two's complement, shortest form
=====  ===========  =====================================================

Types round-trip exactly, at every level: a tuple comes back a tuple, a
frozenset of tuples a frozenset of tuples. Plain data is a tree: an object
reached twice is encoded twice, and a cycle (a list holding itself) cannot be
encoded. Encoding refuses (:class:`CodecError`) data nested deeper than
:attr:`PlainLimits.max_depth` or with more than :attr:`PlainLimits.max_items`
values, since no peer without the ``code`` right would accept it.

What decoding refuses from a peer not trusted with code, and why, is in
``_plain_scan``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

import msgspec

from ._errors import CodecError
from ._plain_scan import (
    DEFAULT_LIMITS,
    EXT_BYTEARRAY,
    EXT_DICT,
    EXT_FROZENSET,
    EXT_INT,
    EXT_SET,
    EXT_TUPLE,
    MAX_COST,
    PlainLimits,
    refuse,
    scan,
)

__all__ = ["Arguments", "NotPlain", "PlainFormat"]

#: A call's arguments: positional, and by keyword.
Arguments = tuple[tuple[Any, ...], dict[str, Any]]

_INT_MIN: Final = -(2**63)
_INT_MAX: Final = 2**64 - 1

_Ext = msgspec.msgpack.Ext

_LEAVES: Final = frozenset({type(None), bool, int, float, str, bytes})
_all_leaves = _LEAVES.issuperset  # of an iterable of types: C speed, stops at the first miss
_all_str = frozenset({str}).issuperset


class NotPlain(Exception):
    """Not plain data: the caller encodes it some other way."""


class _TooBig(Exception):
    pass


def _big_int(n: int) -> msgspec.msgpack.Ext:
    return _Ext(EXT_INT, n.to_bytes((n.bit_length() + 8) // 8, "big", signed=True))


_SHALLOW: Final = 8


def _shallow(obj: tuple[Any, ...], pack: Callable[[object], bytes]) -> list[Any] | None:
    """The items of a short tuple of leaves and containers of leaves, or None."""
    out: list[Any] = []
    append = out.append
    for x in obj:
        cls = x.__class__
        if cls in _LEAVES:
            append(x)
        elif len(x) > _SHALLOW if cls in _SIZED else True:
            return None
        elif cls is tuple and _all_leaves(map(type, x)):
            append(_Ext(EXT_TUPLE, pack(x)))
        elif cls is dict:
            if not (_all_str(map(type, x)) and _all_leaves(map(type, x.values()))):
                return None
            append(x)
        elif cls is list and _all_leaves(map(type, x)):
            append(x)
        else:
            return None
    return out


_SIZED: Final = frozenset({list, dict, tuple})

Walk = Callable[[Any, int, list[int]], Any]


def _walker(pack: Callable[[object], bytes], limits: PlainLimits, check_ints: bool) -> Walk:
    """Make ``value(obj, depth, budget)``: ``obj`` as msgspec should write it.

    Native leaves and containers of them pass through untouched; tuples, sets
    and the rest become extensions. ``budget`` is a one-item list: the values
    still allowed. Without ``check_ints`` ints are assumed to fit in 64 bits
    (msgspec raises OverflowError if one does not, and the caller walks again
    with it). Raises NotPlain or _TooBig.
    """
    max_depth = limits.max_depth
    ext = _Ext

    def value(obj: Any, depth: int, budget: list[int]) -> Any:
        cls = obj.__class__
        if cls in _LEAVES:
            if check_ints and cls is int and not _INT_MIN <= obj <= _INT_MAX:
                return _big_int(obj)
            return obj
        if cls is bytearray:
            return ext(EXT_BYTEARRAY, bytes(obj))
        if depth >= max_depth:
            raise _TooBig(f"nested deeper than {max_depth} levels (or a cycle)")
        depth += 1
        if cls is list:
            return items(obj, depth, budget)
        if cls is tuple:
            return ext(EXT_TUPLE, pack(items(obj, depth, budget)))
        if cls is dict:
            budget[0] -= 2 * len(obj)
            if budget[0] < 0:
                raise _TooBig("more values than PlainLimits.max_items (or shared objects)")
            if _all_str(map(type, obj)):
                if check_ints:
                    return {k: value(v, depth, budget) for k, v in obj.items()}
                # Rebuilt only if a value must change (a tuple, a set...).
                changed = None
                for k, v in obj.items():
                    if v.__class__ not in _LEAVES:
                        new = value(v, depth, budget)
                        if new is not v:
                            if changed is None:
                                changed = dict(obj)
                            changed[k] = new
                return obj if changed is None else changed
            flat: list[Any] = []
            append = flat.append
            for k, v in obj.items():
                append(value(k, depth, budget))
                append(value(v, depth, budget))
            return ext(EXT_DICT, pack(flat))
        if cls is set:
            return ext(EXT_SET, pack(items(obj, depth, budget)))
        if cls is frozenset:
            return ext(EXT_FROZENSET, pack(items(obj, depth, budget)))
        raise NotPlain

    def items(obj: Any, depth: int, budget: list[int]) -> Any:
        budget[0] -= len(obj)
        if budget[0] < 0:
            raise _TooBig("more values than PlainLimits.max_items (or shared objects)")
        if check_ints:
            return [value(x, depth, budget) for x in obj]
        if _all_leaves(map(type, obj)):
            return obj  # msgspec writes a list, tuple, set or frozenset as an array
        leaves = _LEAVES
        return [x if x.__class__ in leaves else value(x, depth, budget) for x in obj]

    return value


def _rebuilder(limits: PlainLimits, checked: bool) -> Callable[[int, memoryview], object]:
    """The extension hook that rebuilds the plain types (see the module docs).

    ``checked``: refuse sets and dicts with too many repeated hash values.
    """
    max_collisions = limits.max_collisions

    def elements(data: memoryview, code: int) -> list[Any]:
        items = decode(data)
        if items.__class__ is not list:
            raise CodecError(f"an extension of code {code} whose data is not an array")
        return items

    def hashed(elems: list[Any], what: str) -> None:
        try:
            distinct = len(set(map(hash, elems)))
        except TypeError as exc:
            raise CodecError(f"plain data holds an unhashable {what}: {exc}") from exc
        if len(elems) - distinct > max_collisions:
            raise refuse(
                f"a {what}s' hashes repeat {len(elems) - distinct} times, over "
                f"PlainLimits.max_collisions = {max_collisions} (a hash-flooding attempt?)"
            )

    def hook(code: int, data: memoryview) -> object:
        if code == EXT_TUPLE:
            items = decode(data)
            if items.__class__ is list:
                return tuple(items)
            raise CodecError(f"an extension of code {code} whose data is not an array")
        if code in (EXT_SET, EXT_FROZENSET):
            elems = elements(data, code)
            if checked:
                hashed(elems, "set element")
            return set(elems) if code == EXT_SET else frozenset(elems)
        if code == EXT_DICT:
            flat = elements(data, code)
            if len(flat) & 1:
                raise CodecError("a dict extension with an odd number of items")
            keys = flat[::2]
            if checked:
                hashed(keys, "dict key")
            return dict(zip(keys, flat[1::2], strict=True))
        if code == EXT_BYTEARRAY:
            return bytearray(data)
        if code == EXT_INT:
            return int.from_bytes(data, "big", signed=True)
        raise CodecError(f"unknown extension code {code} in plain data")

    decoder: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(ext_hook=hook)
    decode = decoder.decode
    return hook


class PlainFormat:
    """Encodes and decodes plain data (see the module docs), within ``limits``.

    Holds no per-call state: threads may share an instance.
    """

    def __init__(self, limits: PlainLimits = DEFAULT_LIMITS) -> None:
        self.limits: Final = limits
        self._pack = pack = msgspec.msgpack.Encoder().encode
        self._max_items = limits.max_items
        self._walk = _walker(pack, limits, check_ints=False)
        self._walk_ints = _walker(pack, limits, check_ints=True)
        trusted_hook = _rebuilder(limits, checked=False)
        untrusted_hook = _rebuilder(limits, checked=True)
        self._trusted = msgspec.msgpack.Decoder(ext_hook=trusted_hook).decode
        self._untrusted = msgspec.msgpack.Decoder(ext_hook=untrusted_hook).decode
        # A call's (args, kwargs), decoded into its shape by msgspec itself.
        self._trusted_args = msgspec.msgpack.Decoder(Arguments, ext_hook=trusted_hook).decode
        self._untrusted_args = msgspec.msgpack.Decoder(Arguments, ext_hook=untrusted_hook).decode
        # Frames this short cannot exceed the depth, item or size budgets.
        self._small = min(limits.max_depth, limits.max_items, limits.size_slack // MAX_COST)

    def encode(self, obj: Any) -> bytes:
        """``obj`` as MessagePack.

        Raises:
            NotPlain: ``obj`` is not plain data.
            CodecError: It is, but nested too deeply or too big to travel.
        """
        cls = obj.__class__
        pack = self._pack
        try:
            try:
                if cls in _LEAVES:
                    return pack(obj)
                if cls is list or cls is tuple:
                    if len(obj) <= self._max_items and _all_leaves(map(type, obj)):
                        return pack(obj if cls is list else _Ext(EXT_TUPLE, pack(obj)))
                    if cls is tuple and len(obj) <= _SHALLOW:
                        shallow = _shallow(obj, pack)  # a call's (args, kwargs), say
                        if shallow is not None:
                            return pack(_Ext(EXT_TUPLE, pack(shallow)))
                elif (
                    cls is dict
                    and 2 * len(obj) <= self._max_items
                    and _all_str(map(type, obj))
                    and _all_leaves(map(type, obj.values()))
                ):
                    return pack(obj)
                return pack(self._walk(obj, 0, [self._max_items]))
            except OverflowError:  # an int beyond 64 bits: walk again, checking ints
                return pack(self._walk_ints(obj, 0, [self._max_items]))
        except _TooBig as exc:
            raise CodecError(f"cannot encode {cls.__name__} as plain data: {exc}") from None
        except RecursionError as exc:
            raise CodecError(f"cannot encode {cls.__name__}: nested too deeply") from exc

    def encode_arguments(self, obj: tuple[Any, ...]) -> bytes | None:
        """A call's ``(args, kwargs)`` (a tuple and a dict of str keys) as one
        MessagePack array of two: an array and a map, in one pass. None if
        ``obj`` has another shape.

        Raises:
            NotPlain: An argument is not plain data.
            CodecError: It is, but nested too deeply or too big to travel.
        """
        if len(obj) != 2:
            return None
        args, kwargs = obj
        if args.__class__ is not tuple or kwargs.__class__ is not dict:
            return None
        if not _all_str(map(type, kwargs)):
            return None
        pack = self._pack
        max_items = self._max_items
        try:
            try:
                if (
                    len(args) + 2 * len(kwargs) <= max_items
                    and _all_leaves(map(type, args))
                    and _all_leaves(map(type, kwargs.values()))
                ):
                    return pack(obj)  # msgspec writes tuples as arrays: nothing to walk
                return pack(self._walk([list(args), kwargs], 0, [max_items]))
            except OverflowError:  # an int beyond 64 bits: walk again, checking ints
                return pack(self._walk_ints([list(args), kwargs], 0, [max_items]))
        except _TooBig as exc:
            raise CodecError(f"cannot encode the arguments as plain data: {exc}") from None
        except RecursionError as exc:
            raise CodecError("cannot encode the arguments: nested too deeply") from exc

    def decode(self, data: bytes, *, trusted: bool = False) -> object:
        """Rebuild what :meth:`encode` made; builds only plain data, whoever sent it.

        Args:
            trusted: The sender may run code here anyway: skip the budgets.

        Raises:
            CodecError: Corrupt data, or over a budget (see ``_plain_scan``).
        """
        return self._decode(data, trusted, self._trusted, self._untrusted)

    def decode_arguments(self, data: bytes, *, trusted: bool = False) -> Arguments:
        """Rebuild what :meth:`encode_arguments` made: ``(args, kwargs)``.

        Raises:
            CodecError: Corrupt data, another shape, or over a budget.
        """
        decoded: Arguments = self._decode(data, trusted, self._trusted_args, self._untrusted_args)
        return decoded

    def _decode(
        self,
        data: bytes,
        trusted: bool,
        decode_trusted: Callable[[bytes], Any],
        decode_untrusted: Callable[[bytes], Any],
    ) -> Any:
        if data.__class__ is not bytes:
            data = bytes(data)
        try:
            if trusted:
                return decode_trusted(data)
            if len(data) > self._small or 0xFF in data:  # 0xff: the timestamp extension?
                scan(data, self.limits)
            return decode_untrusted(data)
        except CodecError:
            raise
        except (msgspec.DecodeError, ValueError, TypeError, RecursionError, OverflowError) as exc:
            raise CodecError(f"cannot decode plain data: {exc}") from exc

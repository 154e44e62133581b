"""CURVE MESSAGE boxes: the in-place path and PyNaCl's public API agree byte for byte."""

from __future__ import annotations

import pytest
from nacl.bindings import crypto_box_beforenm, crypto_box_keypair
from nacl.exceptions import CryptoError

from trimq.zmtp import _box

KEY = crypto_box_beforenm(crypto_box_keypair()[0], crypto_box_keypair()[1])
PREFIX = b"CurveZMQMESSAGEC"
NONCE = (7).to_bytes(8, "big")
SIZES = [0, 1, 255, _box.IN_PLACE_FROM - 2, _box.IN_PLACE_FROM, 1 << 20]


def test_the_in_place_path_is_available() -> None:
    # Without it big frames still work, only slower; this guards the speed-up.
    assert _box.RAW


@pytest.mark.parametrize("size", SIZES)
def test_both_paths_build_the_same_wire_bytes_and_read_them_back(size: int) -> None:
    frame = bytes(range(256)) * (size // 256) + bytes(size % 256)
    plain = b"\x01" + frame
    raw = _box._seal_raw(PREFIX, NONCE, plain, KEY)
    public = _box._seal_public(PREFIX, NONCE, plain, KEY)
    assert bytes(raw) == public
    assert bytes(_box._seal_classic(PREFIX, NONCE, plain, KEY)) == public
    assert public[:8] == b"\x07MESSAGE"
    assert public[8:16] == NONCE
    assert len(public) == 16 + 16 + 1 + size
    assert _box._open_raw(PREFIX, public, KEY) == (1, frame)
    assert _box._open_public(PREFIX, public, KEY) == (1, frame)
    assert _box._open_classic(PREFIX, public, KEY) == (1, frame)
    assert _box.open_message(
        PREFIX, bytes(_box.seal_message(PREFIX, NONCE, 2, frame, KEY)), KEY
    ) == (
        2,
        frame,
    )


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("where", ["nonce", "mac", "last"])
def test_a_tampered_box_fails_on_both_paths(size: int, where: str) -> None:
    body = bytearray(_box._seal_public(PREFIX, NONCE, b"\x00" + bytes(size), KEY))
    body[{"nonce": 9, "mac": 20, "last": -1}[where]] ^= 0x80
    for open_ in (_box._open_raw, _box._open_classic, _box._open_public):
        with pytest.raises(CryptoError):
            open_(PREFIX, bytes(body), KEY)
    with pytest.raises(CryptoError):
        _box._open_raw(
            b"CurveZMQMESSAGES", bytes(_box._seal_public(PREFIX, NONCE, b"\x00", KEY)), KEY
        )

"""CURVE certificate files, readable by pyzmq's ``zmq.auth`` and CZMQ's ``zcert``.

A certificate is a pair of ZPL (rfc 4) text files: ``NAME.key`` holds the
public key and may be handed out; ``NAME.key_secret`` holds both keys and is
created readable by its owner only. Both look like::

    #   comment lines
    metadata
        name = "alice"
    curve
        public-key = "<40 characters of Z85>"
        secret-key = "<40 characters of Z85>"     (secret file only)
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Final

from ..zmtp._keys import curve_keypair, curve_public, z85_decode

__all__ = ["create_certificates", "load_certificate", "load_certificates"]

StrPath = str | os.PathLike[str]

_PUBLIC_BANNER: Final = """\
#   ZeroMQ CURVE public certificate, written by trimq on {date}
#   Safe to share, but check it reached the other side unaltered: whoever
#   can replace it can impersonate its owner.
"""

_SECRET_BANNER: Final = """\
#   ZeroMQ CURVE **secret** certificate, written by trimq on {date}
#   Anyone holding this file can pose as its owner: never share it,
#   never widen its permissions.
"""

# ZPL names (rfc 4): a letter or digit, then letters, digits and $-_@.&+/
_ZPL_NAME: Final = re.compile(r"[A-Za-z0-9][A-Za-z0-9$\-_@.&+/]*")
_KEY_NAMES: Final = ("public-key", "secret-key")
_KEY_LENGTH: Final = 40


def create_certificates(
    key_dir: StrPath,
    name: str,
    metadata: Mapping[str, str] | None = None,
    *,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Generate a CURVE key pair and save it as ``NAME.key`` and ``NAME.key_secret``.

    The secret file is created with mode ``0o600``. Both files carry
    ``metadata`` (as CZMQ's ``zcert`` writes them), so keep secrets out of it.

    Args:
        key_dir: Directory for the files; created if missing.
        name: Base name of the files, without a path separator.
        metadata: Extra ``name = "value"`` lines, e.g. ``{"name": "alice"}``.
            Names follow ZPL: a letter or digit, then letters, digits or
            ``$-_@.&+/``.
        overwrite: Replace existing files instead of refusing.

    Returns:
        ``(public_path, secret_path)``.

    Raises:
        FileExistsError: A file of the pair exists and ``overwrite`` is false.
        ValueError: ``name`` is empty or a path, or ``metadata`` cannot be written as ZPL.
        OSError: The directory or the files cannot be written.
    """
    _check_name(name)
    lines = _metadata_lines(metadata or {})
    directory = Path(key_dir)
    public_path = directory / f"{name}.key"
    secret_path = directory / f"{name}.key_secret"
    if not overwrite:
        existing = [str(p) for p in (public_path, secret_path) if os.path.lexists(p)]
        if existing:
            raise FileExistsError(
                f"refusing to overwrite existing certificate file(s): {', '.join(existing)} "
                "(pass overwrite=True, or --force on the command line)"
            )
    directory.mkdir(parents=True, exist_ok=True)
    public, secret = curve_keypair()
    date = datetime.datetime.now().astimezone().isoformat(timespec="seconds")
    public_text = _render(_PUBLIC_BANNER.format(date=date), lines, public, None)
    secret_text = _render(_SECRET_BANNER.format(date=date), lines, public, secret)
    # Secret first: a failure then never leaves a public key without its secret.
    _write(secret_path, secret_text, 0o600, overwrite=overwrite)
    try:
        _write(public_path, public_text, 0o644, overwrite=overwrite)
    except BaseException:
        # A replaced secret file is kept: it holds the public key too.
        if not overwrite:
            secret_path.unlink(missing_ok=True)
        raise
    return public_path, secret_path


def load_certificate(path: StrPath) -> tuple[bytes, bytes | None]:
    """Read the keys from a certificate file (either file of a pair).

    Accepts what pyzmq and CZMQ write: comments, single, double or no quotes,
    spaces or tabs, CRLF line ends, with or without a ``metadata`` section.

    Args:
        path: A ``NAME.key`` or ``NAME.key_secret`` file.

    Returns:
        ``(public_key, secret_key)`` as Z85 bytes; ``secret_key`` is None for a
        public certificate.

    Raises:
        ValueError: The file is not a certificate, a key is not 40 characters of
            Z85, or the secret key does not belong to the public key.
        OSError: The file cannot be read.
    """
    file = Path(path)
    try:
        text = file.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ValueError(f"{file}: not a certificate (not UTF-8 text: {exc})") from None
    keys = _parse_curve_section(text, file)
    public = keys.get("public-key")
    if public is None:
        raise ValueError(f"{file}: no public-key in a 'curve' section; is it a certificate?")
    public_z85 = _check_key(public, "public-key", file)
    secret = keys.get("secret-key")
    if secret is None:
        return public_z85, None
    secret_z85 = _check_key(secret, "secret-key", file)
    if curve_public(secret_z85) != public_z85:
        raise ValueError(f"{file}: secret-key does not belong to public-key")
    return public_z85, secret_z85


def load_certificates(directory: StrPath) -> list[bytes]:
    """Read the public key of every ``*.key`` certificate in a directory.

    Secret files (``*.key_secret``) are not read. Files come in name order.

    Args:
        directory: The directory to scan (not recursively).

    Returns:
        The public keys, as Z85 bytes.

    Raises:
        ValueError: ``directory`` is not a directory, or one of the files is not
            a valid certificate (the message names it).
    """
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"certificate directory {str(folder)!r} does not exist")
    paths = sorted(p for p in folder.glob("*.key") if p.is_file())
    return [load_certificate(p)[0] for p in paths]


def _check_name(name: str) -> None:
    separators = {"/", os.sep} | ({os.altsep} if os.altsep else set())
    if not name or name in (".", "..") or "\0" in name or any(s in name for s in separators):
        raise ValueError(
            f"invalid certificate name {name!r}: give a plain file name such as 'server', "
            "and the directory separately"
        )


def _metadata_lines(metadata: Mapping[str, str]) -> list[str]:
    lines = []
    for name, value in metadata.items():
        if not _ZPL_NAME.fullmatch(name):
            raise ValueError(
                f"invalid metadata name {name!r}: ZPL names start with a letter or digit "
                "and contain only letters, digits and $-_@.&+/"
            )
        if name.startswith(_KEY_NAMES):
            # pyzmq's loader takes any line starting with these for the keys.
            raise ValueError(f"metadata name {name!r} would be mistaken for a key")
        lines.append(f"    {name} = {_quote(name, value)}")
    return lines


def _quote(name: str, value: str) -> str:
    if any(c in value for c in "\r\n\0"):
        raise ValueError(f"metadata {name!r}: value must be a single line")
    # ZPL has no escapes: quote with whichever mark the value does not contain.
    if '"' not in value:
        return f'"{value}"'
    if "'" not in value:
        return f"'{value}'"
    raise ValueError(f"metadata {name!r}: value cannot contain both ' and \" in ZPL")


def _render(banner: str, metadata: list[str], public: bytes, secret: bytes | None) -> str:
    lines = [banner, "metadata", *metadata, "curve", f'    public-key = "{public.decode()}"']
    if secret is not None:
        lines.append(f'    secret-key = "{secret.decode()}"')
    return "\n".join(lines) + "\n"


def _write(path: Path, text: str, mode: int, *, overwrite: bool) -> None:
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)
    # O_EXCL refuses to follow an existing file or symlink; when overwriting,
    # a fresh file renamed over the old one gets ``mode`` whatever the old had.
    target = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp") if overwrite else path
    fd = os.open(target, flags, mode)
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="\n") as file:
            file.write(text)
        if overwrite:
            os.replace(target, path)
    except BaseException:
        target.unlink(missing_ok=True)
        raise


def _parse_curve_section(text: str, file: Path) -> dict[str, str]:
    """The ``name = value`` entries of the top-level ``curve`` section."""
    entries: dict[str, str] = {}
    section = ""
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.rstrip()
        stripped = line.lstrip()
        if not stripped or stripped.startswith("#"):
            continue
        if line == stripped:  # not indented: a new top-level section
            section = re.split(r"[\s=#]", stripped, maxsplit=1)[0]
            continue
        if section != "curve":
            continue
        name, sep, rest = stripped.partition("=")
        name = name.strip()
        if not sep or name not in _KEY_NAMES:
            continue
        if name in entries:
            raise ValueError(f"{file}, line {number}: {name} appears twice")
        entries[name] = _zpl_value(rest.strip(), file, number)
    return entries


def _zpl_value(text: str, file: Path, number: int) -> str:
    if text[:1] in ("'", '"'):
        end = text.find(text[0], 1)
        if end < 0:
            raise ValueError(f"{file}, line {number}: unterminated quoted value")
        return text[1:end]
    # Unquoted values end at whitespace, not at "#": "#" is a Z85 digit.
    return text.split(maxsplit=1)[0] if text else ""


def _check_key(value: str, what: str, file: Path) -> bytes:
    if len(value) != _KEY_LENGTH:
        raise ValueError(
            f"{file}: {what} must be {_KEY_LENGTH} characters of Z85, got {len(value)}"
        )
    try:
        z85_decode(value)
    except ValueError as exc:
        raise ValueError(f"{file}: {what} is not valid Z85: {exc}") from None
    return value.encode("ascii")

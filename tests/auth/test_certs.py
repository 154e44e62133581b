"""CURVE certificate files: our own round trip, and interop with pyzmq and CZMQ."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth

from trimq.auth import create_certificates, load_certificate, load_certificates
from trimq.zmtp._keys import curve_keypair

posix_only = pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")

# A certificate as CZMQ's zcert_save writes it, with metadata.
CZMQ_SECRET = """\
#   ****  Generated on 2024-05-01 10:00:00 by CZMQ  ****
#   ZeroMQ CURVE **Secret** Certificate
#   DO NOT PROVIDE THIS FILE TO OTHER USERS nor change its permissions.

metadata
    name = "alice"
    email = "alice@example.com"
curve
    public-key = "{public}"
    secret-key = "{secret}"
"""


def keypair() -> tuple[str, str]:
    public, secret = curve_keypair()
    return public.decode(), secret.decode()


def test_create_and_load_round_trip(tmp_path: Path) -> None:
    public_path, secret_path = create_certificates(tmp_path, "server")
    assert public_path == tmp_path / "server.key"
    assert secret_path == tmp_path / "server.key_secret"
    public, none = load_certificate(public_path)
    same_public, secret = load_certificate(secret_path)
    assert none is None
    assert same_public == public
    assert secret is not None
    assert zmq.curve_public(secret) == public


def test_each_call_makes_a_new_key(tmp_path: Path) -> None:
    a, _ = create_certificates(tmp_path, "a")
    b, _ = create_certificates(tmp_path, "b")
    assert load_certificate(a)[0] != load_certificate(b)[0]


@posix_only
def test_secret_file_is_private(tmp_path: Path) -> None:
    public_path, secret_path = create_certificates(tmp_path, "server")
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert stat.S_IMODE(public_path.stat().st_mode) & 0o077 != 0o077  # not widened
    assert "secret-key" not in public_path.read_text()


def test_creates_missing_directory(tmp_path: Path) -> None:
    public_path, _ = create_certificates(tmp_path / "a" / "b", "client")
    assert public_path.is_file()


def test_accepts_str_directory(tmp_path: Path) -> None:
    public_path, _ = create_certificates(str(tmp_path), "client")
    assert public_path.parent == tmp_path


def test_refuses_to_overwrite(tmp_path: Path) -> None:
    _, secret_path = create_certificates(tmp_path, "server")
    before = secret_path.read_bytes()
    with pytest.raises(FileExistsError, match="refusing to overwrite") as info:
        create_certificates(tmp_path, "server")
    assert str(secret_path) in str(info.value)
    assert secret_path.read_bytes() == before


def test_refuses_when_only_one_file_of_the_pair_exists(tmp_path: Path) -> None:
    (tmp_path / "server.key").write_text("left over")
    with pytest.raises(FileExistsError, match=r"server\.key"):
        create_certificates(tmp_path, "server")
    assert not (tmp_path / "server.key_secret").exists()
    assert (tmp_path / "server.key").read_text() == "left over"


@posix_only
def test_overwrite_replaces_and_keeps_secret_private(tmp_path: Path) -> None:
    public_path, secret_path = create_certificates(tmp_path, "server")
    old_public = load_certificate(public_path)[0]
    secret_path.chmod(0o644)
    create_certificates(tmp_path, "server", overwrite=True)
    new_public, new_secret = load_certificate(secret_path)
    assert new_public != old_public
    assert load_certificate(public_path)[0] == new_public
    assert new_secret is not None
    assert stat.S_IMODE(secret_path.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["server.key", "server.key_secret"]


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", f"a{os.sep}b", "/abs", "nul\0"])
def test_rejects_invalid_names(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid certificate name"):
        create_certificates(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_metadata_is_written_to_both_files(tmp_path: Path) -> None:
    metadata = {"name": "alice", "quote": 'say "hi"', "email": "alice@example.com"}
    public_path, secret_path = create_certificates(tmp_path, "alice", metadata)
    for path in (public_path, secret_path):
        text = path.read_text()
        assert '    name = "alice"\n' in text
        assert "    quote = 'say \"hi\"'\n" in text
        assert text.index("metadata") < text.index("name =") < text.index("curve")
    assert load_certificate(secret_path)[1] is not None


@pytest.mark.parametrize(
    ("metadata", "message"),
    [
        ({"has space": "x"}, "invalid metadata name"),
        ({"": "x"}, "invalid metadata name"),
        ({"-dash": "x"}, "invalid metadata name"),
        ({"public-key": "x"}, "mistaken for a key"),
        ({"secret-key-hint": "x"}, "mistaken for a key"),
        ({"name": "two\nlines"}, "single line"),
        ({"name": "both ' and \""}, "both"),
    ],
)
def test_rejects_metadata_zpl_cannot_hold(
    tmp_path: Path, metadata: dict[str, str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        create_certificates(tmp_path, "bad", metadata)
    assert list(tmp_path.iterdir()) == []


# ------------------------------------------------------------------ interop


def test_pyzmq_certificates_load(tmp_path: Path) -> None:
    public_file, secret_file = zmq.auth.create_certificates(tmp_path, "peer", {"name": "bob"})
    public, secret = load_certificate(secret_file)
    assert (public, secret) == zmq.auth.load_certificate(secret_file)
    assert load_certificate(public_file) == (public, None)
    assert secret is not None
    assert zmq.curve_public(secret) == public


def test_our_certificates_load_in_pyzmq(tmp_path: Path) -> None:
    public_path, secret_path = create_certificates(tmp_path, "ours", {"name": "carol"})
    assert zmq.auth.load_certificate(secret_path) == load_certificate(secret_path)
    assert zmq.auth.load_certificate(public_path) == load_certificate(public_path)
    assert set(zmq.auth.load_certificates(tmp_path)) == set(load_certificates(tmp_path))


def test_czmq_certificate_loads(tmp_path: Path) -> None:
    public, secret = keypair()
    path = tmp_path / "alice.key_secret"
    path.write_text(CZMQ_SECRET.format(public=public, secret=secret))
    assert load_certificate(path) == (public.encode(), secret.encode())


@pytest.mark.parametrize(
    "template",
    [
        # single quotes, tabs, CRLF line ends, no metadata section
        "# c\r\ncurve\r\n\tpublic-key = '{public}'\r\n\tsecret-key = '{secret}'\r\n",
        # unquoted values with trailing comments, no spaces around '='
        "curve\n    public-key={public}  # mine\n    secret-key={secret}\n",
        # quoted values followed by comments, a section with a comment, a BOM
        '\ufeffmetadata\ncurve # keys\n  public-key = "{public}" # p\n  secret-key = "{secret}"\n',
        # indented comments and blank lines, an empty metadata section first
        'metadata\n\n    # nothing here\ncurve\n    public-key = "{public}"\n\n'
        '    secret-key = "{secret}"\n',
        # metadata lines that look like keys stay metadata
        'metadata\n    public-key-owner = "x"\ncurve\n    public-key = "{public}"\n'
        '    secret-key = "{secret}"\n',
    ],
)
def test_tolerates_format_variations(tmp_path: Path, template: str) -> None:
    public, secret = keypair()
    path = tmp_path / "v.key_secret"
    path.write_bytes(template.format(public=public, secret=secret).encode())
    assert load_certificate(path) == (public.encode(), secret.encode())


def test_unquoted_key_containing_hash(tmp_path: Path) -> None:
    # "#" is a Z85 digit, so it only starts a comment after whitespace.
    public = "eR^13O8?T7Yo>4t{#m3FznNEm2D+[f}P3ugv=.8Z"
    secret = "+rVlPz9D]n@s?&!WZJW#2^YN@BNjYuZNG^S[(Y^e"
    path = tmp_path / "hash.key_secret"
    path.write_text(f"curve\n    public-key = {public} # c\n    secret-key = {secret}\n")
    assert load_certificate(path) == (public.encode(), secret.encode())


def test_public_only_file(tmp_path: Path) -> None:
    public, _ = keypair()
    path = tmp_path / "v.key"
    path.write_text(f'metadata\ncurve\n    public-key = "{public}"\n')
    assert load_certificate(path) == (public.encode(), None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "no public-key"),
        ("# just a comment\n", "no public-key"),
        ('public-key = "{public}"\n', "no public-key"),  # not in a curve section
        ('metadata\n    public-key = "{public}"\n', "no public-key"),
        ('curve\n    public-key = "short"\n', "must be 40 characters of Z85, got 5"),
        ('curve\n    public-key = "{bad}"\n', "public-key is not valid Z85"),
        ('curve\n    public-key = "{public}\n', "unterminated quoted value"),
        ('curve\n    public-key = "{public}"\n    public-key = "{public}"\n', "appears twice"),
        ('curve\n    public-key = "{public}"\n    secret-key = "{other}"\n', "does not belong"),
        ('curve\n    public-key = "{public}"\n    secret-key = "abc"\n', "secret-key must be 40"),
    ],
)
def test_malformed_files_name_file_and_problem(tmp_path: Path, text: str, message: str) -> None:
    public, _ = keypair()
    _, other = keypair()
    path = tmp_path / "broken.key"
    path.write_text(text.format(public=public, other=other, bad=" " * 40))
    with pytest.raises(ValueError, match=message) as info:
        load_certificate(path)
    assert str(path) in str(info.value)


def test_binary_file_is_not_a_certificate(tmp_path: Path) -> None:
    path = tmp_path / "junk.key"
    path.write_bytes(b"\xff\xfe\x00garbage")
    with pytest.raises(ValueError, match="not UTF-8") as info:
        load_certificate(path)
    assert str(path) in str(info.value)


def test_missing_file_is_an_os_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_certificate(tmp_path / "missing.key")


# ------------------------------------------------------------------ directories


def test_load_certificates_reads_public_files_only(tmp_path: Path) -> None:
    paths = [create_certificates(tmp_path, name)[0] for name in ("b", "a", "c")]
    zmq.auth.create_certificates(tmp_path, "from-pyzmq")
    (tmp_path / "notes.txt").write_text("not a certificate")
    (tmp_path / "dir.key").mkdir()
    keys = load_certificates(tmp_path)
    expected = [load_certificate(tmp_path / f"{n}.key")[0] for n in ("a", "b", "c", "from-pyzmq")]
    assert keys == expected  # name order, secret files skipped
    assert len(paths) == 3


def test_load_certificates_of_an_empty_directory(tmp_path: Path) -> None:
    assert load_certificates(tmp_path) == []


def test_load_certificates_requires_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_certificates(tmp_path / "missing")
    (tmp_path / "file").write_text("")
    with pytest.raises(ValueError, match="does not exist"):
        load_certificates(tmp_path / "file")


def test_load_certificates_reports_the_bad_file(tmp_path: Path) -> None:
    create_certificates(tmp_path, "good")
    (tmp_path / "bad.key").write_text("curve\n")
    with pytest.raises(ValueError, match=r"bad\.key"):
        load_certificates(tmp_path)

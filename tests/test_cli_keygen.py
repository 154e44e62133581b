"""``trimq keygen``: writes a certificate pair pyzmq can read, refuses to clobber."""

from __future__ import annotations

import stat
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.auth

from trimq.__main__ import main
from trimq.auth import load_certificate


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    status = main(argv)
    out, err = capsys.readouterr()
    return status, out, err


def test_writes_the_pair(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, out, err = run(["keygen", "server", "--dir", str(tmp_path)], capsys)
    assert (status, err) == (0, "")
    public_path, secret_path = tmp_path / "server.key", tmp_path / "server.key_secret"
    public, secret = load_certificate(secret_path)
    assert load_certificate(public_path) == (public, None)
    assert public.decode() in out
    assert str(public_path) in out
    assert str(secret_path) in out
    # pyzmq reads what we wrote, and the keys belong together.
    assert zmq.auth.load_certificate(secret_path) == (public, secret)
    assert secret is not None
    assert zmq.curve_public(secret) == public


@pytest.mark.skipif(sys.platform == "win32", reason="POSIX file modes")
def test_secret_file_mode(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keygen", "client", "--dir", str(tmp_path)], capsys)[0] == 0
    assert stat.S_IMODE((tmp_path / "client.key_secret").stat().st_mode) == 0o600


def test_defaults_to_the_current_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert run(["keygen", "here"], capsys)[0] == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here.key", "here.key_secret"]


def test_creates_the_directory(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run(["keygen", "x", "--dir", str(tmp_path / "new" / "dir")], capsys)[0] == 0
    assert (tmp_path / "new" / "dir" / "x.key").is_file()


def test_metadata(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keygen", "alice", "--dir", str(tmp_path), "--meta", "name=alice", "--meta", "x=a=b"]
    assert run(argv, capsys)[0] == 0
    text = (tmp_path / "alice.key").read_text()
    assert '    name = "alice"\n' in text
    assert '    x = "a=b"\n' in text


def test_refuses_to_overwrite(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["keygen", "server", "--dir", str(tmp_path)]
    assert run(argv, capsys)[0] == 0
    before = load_certificate(tmp_path / "server.key_secret")
    status, out, err = run(argv, capsys)
    assert (status, out) == (1, "")
    assert err.startswith("trimq keygen: error: refusing to overwrite")
    assert err.count("\n") == 1
    assert "Traceback" not in err
    assert load_certificate(tmp_path / "server.key_secret") == before
    # --force replaces the pair.
    assert run([*argv, "--force"], capsys)[0] == 0
    after = load_certificate(tmp_path / "server.key_secret")
    assert after != before


@pytest.mark.parametrize("name", ["a/b", "../escape", "", "."])
def test_rejects_invalid_names(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    status, out, err = run(["keygen", name, "--dir", str(tmp_path)], capsys)
    assert (status, out) == (1, "")
    assert err.startswith("trimq keygen: error: invalid certificate name")
    assert err.count("\n") == 1
    assert list(tmp_path.iterdir()) == []


def test_rejects_invalid_metadata_names(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    status, _, err = run(["keygen", "k", "--dir", str(tmp_path), "--meta", "bad name=x"], capsys)
    assert status == 1
    assert "invalid metadata name" in err


def test_meta_needs_key_equals_value(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as info:
        main(["keygen", "k", "--dir", str(tmp_path), "--meta", "novalue"])
    assert info.value.code == 2  # argparse's usage error
    assert "expected KEY=VALUE" in capsys.readouterr().err


def test_python_dash_m(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "trimq", "keygen", "node", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    public, secret = zmq.auth.load_certificate(tmp_path / "node.key_secret")
    assert public.decode() in result.stdout
    assert secret is not None
    again = subprocess.run(
        [sys.executable, "-m", "trimq", "keygen", "node", "--dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert again.returncode == 1
    assert again.stderr.startswith("trimq keygen: error: refusing to overwrite")
    assert "Traceback" not in again.stderr

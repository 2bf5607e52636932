"""Raw-file identity: quick fingerprints read the size and both ends, full ones every byte."""

import hashlib
import os

import pytest

from models.data import sources
from models.data.sources import SourceError, fingerprint_file

MIB = 1 << 20


def test_small_files_hash_their_size_and_every_byte(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b"abc")
    expected = hashlib.sha256(b"3abc").hexdigest()
    assert fingerprint_file(path) == fingerprint_file(path, full=True) == expected
    assert fingerprint_file(str(path)) == expected  # a str path is taken too


def test_quick_mode_reads_only_the_first_and_last_mib(tmp_path):
    data = bytearray(os.urandom(3 * MIB))
    path = tmp_path / "dump.json"
    path.write_bytes(data)
    quick, full = fingerprint_file(path), fingerprint_file(path, full=True)
    assert quick == hashlib.sha256(str(3 * MIB).encode() + data[:MIB] + data[-MIB:]).hexdigest()
    assert full == hashlib.sha256(str(3 * MIB).encode() + data).hexdigest() != quick
    data[MIB + 5] ^= 0xFF  # a change in the middle: only the full hash sees it
    path.write_bytes(data)
    assert fingerprint_file(path) == quick and fingerprint_file(path, full=True) != full
    data[-1] ^= 0xFF  # a change at an end, or of the size, changes the quick hash too
    path.write_bytes(data)
    assert fingerprint_file(path) != quick
    path.write_bytes(data + b"\n")
    assert fingerprint_file(path) != quick


def test_a_file_of_exactly_two_ends_is_hashed_whole(tmp_path, monkeypatch):
    monkeypatch.setattr(sources, "_EDGE", 4)
    path = tmp_path / "r.json"
    path.write_bytes(b"12345678")  # 2 * _EDGE: nothing in between to skip
    assert fingerprint_file(path) == hashlib.sha256(b"812345678").hexdigest()
    path.write_bytes(b"123456789")
    assert fingerprint_file(path) == hashlib.sha256(b"912346789").hexdigest()


@pytest.mark.parametrize(("make", "message"), [
    (lambda p: None, "does not exist"),
    (lambda p: p.write_bytes(b""), "is empty"),
    (lambda p: p.mkdir(), "does not exist"),  # a folder is not a raw file
])
def test_missing_empty_or_non_files_raise_a_source_error_naming_the_file(tmp_path, make, message):
    path = tmp_path / "reviews.json.gz"
    make(path)
    with pytest.raises(SourceError, match=f"raw file {path} {message}"):
        fingerprint_file(path)
    assert issubclass(SourceError, FileNotFoundError)  # callers that catch missing files catch it


def test_an_unreadable_file_raises_a_source_error(tmp_path, monkeypatch):
    path = tmp_path / "r.json"
    path.write_bytes(b"abc")

    def refuse(*args, **kwargs):
        raise PermissionError("denied")

    monkeypatch.setattr(type(path), "open", refuse)
    with pytest.raises(SourceError, match=f"raw file {path} cannot be read: denied"):
        fingerprint_file(path)

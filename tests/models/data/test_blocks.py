"""Blocks of whole lines: every line once, in order; huge lines cut; bad files named."""

import gzip

import pytest

from models.data.blocks import iter_blocks
from models.data.sources import SourceError


def lines(n: int) -> bytes:
    return b"".join(b'{"n": %d}\n' % i for i in range(n))


@pytest.mark.parametrize("name", ["r.json.gz", "r.json"])
def test_every_line_arrives_once_in_order_and_each_block_ends_a_line(tmp_path, name):
    data = lines(500)[:-1]  # the last line has no newline
    path = tmp_path / name
    path.write_bytes(gzip.compress(data) if name.endswith(".gz") else data)
    blocks = list(iter_blocks(path, block_bytes=256))
    assert len(blocks) > 10 and all(b.endswith(b"\n") for b in blocks)
    assert b"".join(blocks) == data + b"\n"


def test_a_huge_line_is_cut_to_the_cap_and_the_next_line_survives(tmp_path):
    path = tmp_path / "r.json"
    path.write_bytes(b'{"a": 1}\n' + b"x" * 100_000 + b'\n{"b": 2}\n')
    blocks = list(iter_blocks(path, block_bytes=1024, max_line_bytes=1024))
    assert max(len(b) for b in blocks) <= 2048 + 1
    assert b"".join(blocks).splitlines()[-1] == b'{"b": 2}'


@pytest.mark.parametrize(("content", "message"), [
    (None, "does not exist"), (b"", "is empty"), (b"\x1f\x8bnot gzip at all", "is not a readable gzip file")])
def test_a_file_that_cannot_be_read_is_named(tmp_path, content, message):
    path = tmp_path / "r.json.gz"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(SourceError, match=f"raw file {path} {message}"):
        list(iter_blocks(path))


def test_a_truncated_gzip_stream_is_named(tmp_path):
    path = tmp_path / "r.json.gz"
    path.write_bytes(gzip.compress(lines(5000))[:-50])
    with pytest.raises(SourceError, match="is truncated: the gzip stream ends early"):
        list(iter_blocks(path, block_bytes=1024))

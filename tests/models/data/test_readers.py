"""Streaming JSON-lines reader: formats, block boundaries, every bad-input case."""

import gzip
import json
from pathlib import Path

import polars as pl
import pytest

from models.data.blocks import iter_blocks
from models.data.ingest import meta_spec, review_spec
from models.data.readers import (
    _fast,
    _slow,
    parse_block,
    read_records,
)
from models.data.sources import SourceError

NOW = 1_700_000_000
SPEC18 = review_spec("amazon2018", NOW)
SPEC23 = review_spec("amazon2023", NOW)


def review(user="U1", item="I1", ts=1_500_000_000, rating=5.0, **extra) -> str:
    return json.dumps({"reviewerID": user, "asin": item, "unixReviewTime": ts, "overall": rating,
                       "reviewText": "fine", **extra})


def write(path: Path, lines: list[str | bytes], newline_at_end: bool = True) -> Path:
    data = b"\n".join(x if isinstance(x, bytes) else x.encode() for x in lines)
    data += b"\n" if newline_at_end else b""
    if path.suffix == ".gz":
        data = gzip.compress(data, mtime=0)
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("name", ["Food.json.gz", "Food.json"])
def test_2018_reviews_gz_and_plain(tmp_path, name):
    path = write(tmp_path / name, [review("U1", "I1", 1_500_000_000, 4.0),
                                   review("U2", "I2", 1_500_000_100, 3)])
    result = read_records(path, SPEC18)
    assert result.frame.select("user", "item", "timestamp", "rating", "line").rows() == [
        ("U1", "I1", 1_500_000_000, 4.0, 1), ("U2", "I2", 1_500_000_100, 3.0, 2)]
    assert result.quarantine.height == 0 and result.lines == 2


@pytest.mark.parametrize("name", ["Food.jsonl.gz", "Food.jsonl"])
def test_2023_reviews_milliseconds_and_parent_asin(tmp_path, name):
    rows = [{"user_id": "U1", "asin": "child", "parent_asin": "P1", "timestamp": 1_600_000_000_123,
             "rating": 5.0, "text": "ok"}]
    path = write(tmp_path / name, [json.dumps(r) for r in rows])
    frame = read_records(path, SPEC23).frame
    assert frame.select("user", "item", "timestamp", "rating").rows() == [
        ("U1", "P1", 1_600_000_000, 5.0)]


def test_blocks_keep_line_numbers_and_last_line_without_newline(tmp_path):
    lines = [review(f"U{i}", f"I{i}", 1_500_000_000 + i) for i in range(50)]
    path = write(tmp_path / "r.json.gz", lines, newline_at_end=False)
    blocks = list(iter_blocks(path, block_bytes=300))
    assert len(blocks) > 5 and all(b.endswith(b"\n") for b in blocks)
    result = read_records(path, SPEC18, block_bytes=300)
    assert result.frame["line"].to_list() == list(range(1, 51))
    assert result.frame["user"].to_list() == [f"U{i}" for i in range(50)]


def test_every_bad_line_is_quarantined_with_its_line_and_reason(tmp_path):
    lines = [
        review("U1"),                                            # 1 ok
        '{"reviewerID": "U2", "asin": ',                         # 2 invalid json
        json.dumps({"asin": "I1", "unixReviewTime": 1_500_000_000}),  # 3 missing user
        review("U4", ts="2017-01-01"),                           # 4 timestamp is a string
        review({"id": 5}),                                       # 5 user is an object
        review("U6", rating=True),                               # 6 rating is a bool
        b'{"reviewerID": "U\xff7", "asin": "I1", "unixReviewTime": 1500000000}',  # 7 bad utf-8
        "[1, 2, 3]",                                             # 8 not an object
        "",                                                      # 9 blank: skipped
        review("U10", ts=100),                                   # 10 1970: implausible
        review("U11", ts=NOW + 10 * 86_400),                     # 11 in the future
        review("U12", item=""),                                  # 12 empty item id
        '{"reviewerID": "U13", "asin": "I1", "unixReviewTime": 1500000000, "overall": NaN}',
        review("U14", rating=None),                              # 14 ok: rating is optional
        review(True),                                            # 15 user is a boolean
        review(["U16"]),                                         # 16 user is an array
    ]
    result = read_records(write(tmp_path / "r.json.gz", lines), SPEC18)
    assert result.frame["user"].to_list() == ["U1", "U14"]
    assert result.frame["line"].to_list() == [1, 14]
    got = dict(zip(result.quarantine["line"], result.quarantine["reason"], strict=True))
    assert got == {2: "invalid_json", 3: "missing_field", 4: "wrong_type", 5: "wrong_type",
                   6: "wrong_type", 7: "invalid_utf8", 8: "not_an_object",
                   10: "implausible_timestamp", 11: "implausible_timestamp",
                   12: "missing_field", 13: "invalid_json", 15: "wrong_type",
                   16: "wrong_type"}
    assert (result.quarantine["source"] == str(tmp_path / "r.json.gz")).all()
    assert result.quarantine.filter(pl.col("line") == 4)["record"][0] == lines[3]


def test_fast_and_line_by_line_paths_agree_on_valid_lines(tmp_path):
    lines = [review(f"U{i}", f"I{i % 7}", 1_500_000_000 + i, float(i % 5 + 1)) for i in range(40)]
    lines.append(json.dumps({"reviewerID": "U", "asin": "I", "unixReviewTime": 1_500_000_000}))
    block = ("\n".join(lines) + "\n").encode()
    fast = _fast(block, len(lines), SPEC18)
    slow, bad = _slow(block, 1, SPEC18, "x")
    assert fast is not None and bad.height == 0
    assert fast.equals(slow.drop("line"))


@pytest.mark.parametrize("bad_id", [{"id": 5}, ["U"], True, False])
def test_an_id_polars_would_stringify_alone_in_a_block_is_still_quarantined(bad_id):
    lines = [review("U1"), review(bad_id), review("U3")]
    chunk = parse_block(("\n".join(lines) + "\n").encode(), 1, SPEC18, "src")
    assert chunk.fallback and chunk.frame["user"].to_list() == ["U1", "U3"]
    assert chunk.quarantine.select("line", "reason").rows() == [(2, "wrong_type")]


def test_numeric_ids_read_as_their_text_on_both_paths():
    lines = [review(1234567890, 42, 1_500_000_000), review("U2", 7.0, 1_500_000_000)]
    block = ("\n".join(lines) + "\n").encode()
    fast = _fast(block, 2, SPEC18)
    slow, bad = _slow(block, 1, SPEC18, "x")
    assert bad.height == 0 and fast.equals(slow.drop("line"))
    assert fast.select("reviewerID", "asin").rows() == [("1234567890", "42"), ("U2", "7")]


def test_a_bad_line_does_not_lose_its_block_neighbours(tmp_path):
    lines = [review(f"U{i}") for i in range(30)]
    lines[17] = "{broken"
    chunk = parse_block(("\n".join(lines) + "\n").encode(), 101, SPEC18, "src")
    assert chunk.fallback and chunk.frame.height == 29
    assert chunk.quarantine.rows() == [("src", 118, "invalid_json", "{broken")]


def test_2018_meta_python_literal_lines_are_accepted(tmp_path):
    lines = ["{'asin': 'I1', 'title': 'Tea', 'category': ['Food', 'Tea'], 'brand': 'B'}",
             json.dumps({"asin": "I2", "title": "Pot", "description": "a lone string"})]
    frame = read_records(write(tmp_path / "meta.json.gz", lines), meta_spec("amazon2018")).frame
    assert frame.select("item", "title", "categories", "description").rows() == [
        ("I1", "Tea", ["Food", "Tea"], None), ("I2", "Pot", None, ["a lone string"])]


def test_one_huge_line_is_cut_not_buffered(tmp_path):
    """A corrupt dump may hold a line of gigabytes; the reader keeps at most a block plus a cap."""
    huge = b'{"reviewerID": "' + b"x" * (3 << 20) + b'"}'
    path = write(tmp_path / "r.json.gz", [review("U1"), huge, review("U2")])
    blocks = list(iter_blocks(path, block_bytes=64 << 10, max_line_bytes=64 << 10))
    assert max(len(b) for b in blocks) <= (128 << 10) + 1
    lines = b"".join(blocks).splitlines()
    assert len(lines) == 3 and json.loads(lines[2])["reviewerID"] == "U2"
    chunk = parse_block(b"".join(blocks), 1, SPEC18, str(path))
    assert chunk.frame["user"].to_list() == ["U1", "U2"]
    assert chunk.quarantine["reason"].to_list() == ["invalid_json"]


def test_truncated_gzip_stops_with_the_file_named(tmp_path):
    path = write(tmp_path / "r.json.gz", [review(f"U{i}") for i in range(2000)])
    path.write_bytes(path.read_bytes()[:-200])
    with pytest.raises(SourceError, match=r"r\.json\.gz is truncated"):
        read_records(path, SPEC18)


def test_corrupt_gzip_stops_with_the_file_named(tmp_path):
    path = tmp_path / "r.json.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00" + b"not really deflate data" * 10)
    with pytest.raises(SourceError, match=r"r\.json\.gz is not a readable gzip"):
        read_records(path, SPEC18)


def test_missing_and_empty_files_stop_with_the_file_named(tmp_path):
    with pytest.raises(SourceError, match="nope.json.gz does not exist"):
        read_records(tmp_path / "nope.json.gz", SPEC18)
    (tmp_path / "empty.json").write_bytes(b"")
    with pytest.raises(SourceError, match="empty.json is empty"):
        read_records(tmp_path / "empty.json", SPEC18)
    (tmp_path / "zero.json.gz").write_bytes(gzip.compress(b""))
    with pytest.raises(SourceError, match="zero.json.gz holds no lines"):
        read_records(tmp_path / "zero.json.gz", SPEC18)


def test_a_file_without_one_valid_record_is_an_error(tmp_path):
    path = write(tmp_path / "r.json", ["{bad", "[]"])
    with pytest.raises(SourceError, match="no valid record: all 2 lines were quarantined"):
        read_records(path, SPEC18)

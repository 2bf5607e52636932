"""Fuzzing the raw readers and the ingest entry points with hypothesis (reliability guarantee 3).

Why by construction: every example starts from valid 2018 or 2023 review / metadata records,
damages a drawn subset of lines in ways whose quarantine reason is known (wrong types, missing
or null keys, huge numbers, lone surrogates, raw control characters and NUL bytes, invalid
UTF-8, truncated JSON, non-object JSON), leaves others valid but odd (unicode, numeric ids,
extra fields, CRLF, Python-literal metadata), mixes in blank lines, and writes the file gzip'd
or plain, read in tiny blocks so block boundaries and both parsing paths (polars per block,
``json`` per line) are exercised. So the property is exact: the read succeeds with exactly the
expected reason for every damaged line and keeps exactly the intact ones, or, when nothing
valid is left, raises ``SourceError`` (the readers' documented error, models/data/sources.py) naming
the file. Damaged gzip streams (random bytes, truncation, bit flips, garbage around a valid
member) must give a consistent result or that same error; a truncation must always be caught.

Anything else fails: another exception, an example slower than the hypothesis deadline, one
stuck for HANG_S (an interval timer interrupts it), or one that raises the process's peak
RSS by more than MEMORY_BOUND (inputs are a few KB, so that would be a blow-up).
"""

import contextlib
import gzip
import json
import resource
import signal
import tempfile
from collections import Counter
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from models.data.ingest import (
    EARLIEST_PLAUSIBLE,
    FUTURE_SLACK_S,
    DomainFiles,
    ingest_pair,
    meta_spec,
    review_spec,
    summary,
)
from models.data.readers import read_records
from models.data.sources import SourceError

NOW = 1_700_000_000
HANG_S = 20
MEMORY_BOUND = 256 << 20  # bytes of peak-RSS growth allowed for one example
FUZZ = settings(max_examples=60, deadline=timedelta(seconds=5), database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
REASONS = {"invalid_json", "invalid_utf8", "not_an_object", "wrong_type", "missing_field",
           "implausible_timestamp"}
MARK = "@@MARK@@"  # replaced in the serialized line by raw bytes JSON cannot express


@dataclass(frozen=True)
class Kind:
    """One raw record layout: its keys, how its timestamps scale, its reader spec."""

    fmt: str
    role: str  # reviews | meta
    ids: tuple[str, ...]  # identifier keys (must be non-empty strings or numbers)
    text: str  # a required key that must be a string (an id, or meta's title)
    ts: str | None = None
    rating: str | None = None
    ts_scale: int = 1

    def spec(self):
        return review_spec(self.fmt, NOW) if self.role == "reviews" else meta_spec(self.fmt)

    def suffix(self, gz: bool) -> str:
        return (".json" if self.fmt == "amazon2018" else ".jsonl") + (".gz" if gz else "")


R18 = Kind("amazon2018", "reviews", ("reviewerID", "asin"), "reviewerID", "unixReviewTime", "overall")
R23 = Kind("amazon2023", "reviews", ("user_id", "parent_asin"), "user_id", "timestamp", "rating", 1000)
M18 = Kind("amazon2018", "meta", ("asin",), "title")
M23 = Kind("amazon2023", "meta", ("parent_asin",), "title")
KINDS = (R18, R23, M18, M23)


def record(kind: Kind, i: int, item: str | None = None) -> dict:
    """A valid record; ``i`` makes ids and timestamps distinct."""
    if kind.role == "reviews":
        return {kind.ids[0]: f"U{i}", kind.ids[1]: item or f"I{i}",
                kind.ts: (1_500_000_000 + i) * kind.ts_scale, kind.rating: float(i % 5 + 1),
                "text": f"review {i}"}
    if kind.fmt == "amazon2018":
        return {"asin": item or f"I{i}", "title": f"Tuscan Pesto {i}", "category": ["Food", "Sauce"],
                "brand": "Roma", "description": ["jarred"], "main_cat": "Grocery"}
    return {"parent_asin": item or f"I{i}", "title": f"Tuscan Pesto {i}", "categories": ["Food"],
            "store": "Roma", "description": ["jarred"], "main_category": "Grocery"}


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12)
non_strings = st.booleans() | st.lists(json_values, max_size=3) | st.dictionaries(st.text(max_size=5), json_values,
                                                                                  max_size=3)
implausible_s = st.integers(-(2**62) // 1000, EARLIEST_PLAUSIBLE - 1) | st.integers(NOW + FUTURE_SLACK_S + 1,
                                                                                   2**62 // 1000)

VALID = ("intact", "extra_field", "rating_variant", "crlf", "python_literal")
REWRITE_IDS = ("unicode_text", "numeric_id", "escaped_nul")  # valid, but the id or title changes
DAMAGE = ("wrong_type_id", "wrong_type_ts", "huge_ts", "implausible_ts", "wrong_type_rating", "missing_key",
          "null_key", "empty_text", "truncated", "not_an_object", "raw_control", "invalid_utf8",
          "lone_surrogate", "unrepresentable_literal")
MUTATIONS = VALID + REWRITE_IDS + DAMAGE


def applies(kind: Kind, mutation: str) -> bool:
    if mutation in ("wrong_type_ts", "huge_ts", "implausible_ts", "wrong_type_rating", "rating_variant"):
        return kind.role == "reviews"
    if mutation in ("python_literal", "unrepresentable_literal"):
        return kind is M18  # only 2018 metadata may be written as Python literals
    return True


@st.composite
def line(draw, kind: Kind, rec: dict, allowed: tuple[str, ...] = MUTATIONS) -> tuple[bytes, str | None]:
    """One serialized line and the reason it must be quarantined for (None: it must be kept)."""
    mutation = draw(st.sampled_from([m for m in allowed if applies(kind, m)]))
    event(mutation)
    rec = dict(rec)
    ascii_only = draw(st.booleans())
    reason = None
    raw: bytes | None = None
    if mutation == "extra_field":
        key = draw(st.text(max_size=10).filter(lambda k: k not in rec))
        rec[key] = draw(json_values)
    elif mutation == "rating_variant":  # the rating is optional, and any number a float64 holds
        if draw(st.booleans()):
            del rec[kind.rating]
        else:
            rec[kind.rating] = draw(st.none() | st.integers(-(10**300), 10**300)
                                    | st.floats(allow_nan=False, allow_infinity=False))
    elif mutation == "unicode_text":
        rec[kind.text] = draw(st.text(min_size=1, max_size=30))
    elif mutation == "numeric_id":
        rec[draw(st.sampled_from(kind.ids))] = draw(st.integers() | st.floats(allow_nan=False,
                                                                             allow_infinity=False))
    elif mutation == "escaped_nul":
        rec[kind.text] = "A\x00B"
    elif mutation == "wrong_type_id":
        rec[draw(st.sampled_from(kind.ids))] = draw(non_strings)
        reason = "wrong_type"
    elif mutation == "wrong_type_ts":
        rec[kind.ts] = draw(st.text(max_size=12) | non_strings | st.floats(allow_nan=False, allow_infinity=False))
        reason = "wrong_type"
    elif mutation == "huge_ts":
        rec[kind.ts] = draw(st.integers(2**63, 10**40) | st.integers(-(10**40), -(2**63) - 1))
        reason = "wrong_type"
    elif mutation == "implausible_ts":
        rec[kind.ts] = draw(implausible_s) * kind.ts_scale + draw(st.integers(0, kind.ts_scale - 1))
        reason = "implausible_timestamp"
    elif mutation == "wrong_type_rating":
        rec[kind.rating] = draw(st.text(max_size=8) | non_strings | st.integers(10**309, 10**4000))
        reason = "wrong_type"
    elif mutation in ("missing_key", "null_key"):
        key = draw(st.sampled_from(kind.ids + ((kind.ts,) if kind.ts else ("title",))))
        if mutation == "missing_key":
            del rec[key]
        else:
            rec[key] = None
        reason = "missing_field"
    elif mutation == "empty_text":
        rec[kind.text] = ""
        reason = "missing_field"
    elif mutation == "not_an_object":
        raw = json.dumps(draw(st.none() | st.booleans() | st.integers() | st.text(max_size=10)
                              | st.lists(json_values, max_size=4))).encode()
        reason = "not_an_object"
    elif mutation in ("raw_control", "invalid_utf8"):
        rec[kind.text] = f"A{MARK}B"
        # 2018 metadata also accepts Python literals, whose strings may hold most raw control
        # characters; a NUL byte breaks both readings
        controls = [b"\0"] if kind is M18 else [bytes([c]) for c in range(32) if c != 10]
        marker = (draw(st.sampled_from(controls)) if mutation == "raw_control"
                  else draw(st.sampled_from([b"\xff", b"\xc3", b"\x80", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80"])))
        raw = json.dumps(rec).encode().replace(MARK.encode(), marker)
        reason = "invalid_json" if mutation == "raw_control" else "invalid_utf8"
    elif mutation == "lone_surrogate":
        rec[kind.text] = "A" + chr(draw(st.integers(0xD800, 0xDFFF))) + "B"
        raw = json.dumps(rec, ensure_ascii=True).encode()
        reason = "invalid_utf8"
    elif mutation == "unrepresentable_literal":
        rec["title"] = draw(st.sampled_from([{1, 2}, b"bytes", 1j]))
        raw = repr(rec).encode()
        reason = "wrong_type"
    if mutation == "python_literal":
        raw = repr(rec).encode()
    if raw is None:
        raw = json.dumps(rec, ensure_ascii=ascii_only).encode()
    if mutation == "crlf":
        raw += b"\r"
    if mutation == "truncated":
        text = raw.decode()
        raw = text[:draw(st.integers(1, len(text) - 1))].encode()
        reason = "invalid_json"
    return raw, reason


blank_lines = st.sampled_from([b"", b" ", b"\t", b"\r", b"  \t "])


@st.composite
def raw_file(draw, kind: Kind, n_max: int = 25):
    """(lines, {line number: reason}, kept line numbers) for one damaged file."""
    lines, reasons, kept = [], {}, []
    for i in range(draw(st.integers(1, n_max))):
        if draw(st.integers(0, 9)) == 0:
            lines.append(draw(blank_lines))
        raw, reason = draw(line(kind, record(kind, i)))
        lines.append(raw)
        if reason is None:
            kept.append(len(lines))
        else:
            reasons[len(lines)] = reason
    return lines, reasons, kept


def write(path: Path, lines: list[bytes], gz: bool, final_newline: bool) -> Path:
    data = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    path.write_bytes(gzip.compress(data, mtime=0) if gz else data)
    return path


def _timeout(signum, frame):
    raise TimeoutError(f"example still running after {HANG_S} s: the reader hangs")


@contextlib.contextmanager
def bounded():
    """Interrupt an example stuck for HANG_S; fail one that grows peak RSS by MEMORY_BOUND."""
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    previous = signal.signal(signal.SIGALRM, _timeout)
    signal.setitimer(signal.ITIMER_REAL, HANG_S)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - before
    assert grown < MEMORY_BOUND, f"one example raised peak RSS by {grown >> 20} MiB"


def check_consistent(result, path: Path) -> None:
    """What any successful read must satisfy: each line is kept or quarantined, never both."""
    kept = set(result.frame["line"].to_list())
    bad = result.quarantine["line"].to_list()
    assert len(bad) == len(set(bad)) and not kept & set(bad)
    assert all(1 <= n <= result.lines for n in kept | set(bad))
    assert set(result.quarantine["reason"]) <= REASONS
    assert (result.quarantine["source"] == str(path)).all()


@pytest.mark.parametrize("kind", KINDS, ids=lambda k: f"{k.fmt}-{k.role}")
@FUZZ
@given(data=st.data(), gz=st.booleans(), final_newline=st.booleans(), block_bytes=st.integers(64, 2048))
def test_damaged_lines_are_quarantined_with_their_reason_or_the_file_is_named(kind, data, gz, final_newline,
                                                                              block_bytes):
    lines, reasons, kept = data.draw(raw_file(kind))
    with tempfile.TemporaryDirectory() as tmp, bounded():
        path = write(Path(tmp) / f"Food{kind.suffix(gz)}", lines, gz, final_newline)
        if not kept:
            with pytest.raises(SourceError, match="holds no valid record") as err:
                read_records(path, kind.spec(), block_bytes)
            assert str(path) in str(err.value)
            return
        result = read_records(path, kind.spec(), block_bytes)
        check_consistent(result, path)
        assert dict(zip(result.quarantine["line"], result.quarantine["reason"], strict=True)) == reasons
        assert result.frame["line"].to_list() == kept
        assert result.lines == len(lines)


@st.composite
def pair_domain(draw, domain: str, fmt: str):
    """Both raw files of one domain, damaged, and what ingest must make of them.

    A quarter of the lines are damaged. Ids are never rewritten, so which review has metadata
    stays known: a review is an orphan when its item's metadata line is dropped or damaged; an
    intact copy of a kept review (later timestamp) is a duplicate_review; an intact copy of a
    kept metadata line of a reviewed item is a duplicate_item.
    """
    rkind, mkind = (R18, M18) if fmt == "amazon2018" else (R23, M23)
    n_items = draw(st.integers(1, 6))
    items = [f"{domain}I{j}" for j in range(n_items)]
    pairs = draw(st.lists(st.tuples(st.integers(0, 9), st.sampled_from(items)), min_size=1, max_size=14,
                          unique=True))
    expected: Counter = Counter()
    review_lines, kept_reviews = [], []
    for i, (user, item) in enumerate(pairs):
        rec = record(rkind, i, item) | {rkind.ids[0]: f"{domain}U{user}"}
        raw, reason = draw(line(rkind, rec, DAMAGE if draw(st.integers(0, 3)) == 0 else VALID))
        review_lines.append(raw)
        if reason is None:
            kept_reviews.append((rec, item))
        else:
            expected[reason] += 1
    for rec, _ in draw(st.lists(st.sampled_from(kept_reviews), max_size=3)) if kept_reviews else []:
        review_lines.append(json.dumps(rec | {rkind.ts: rec[rkind.ts] + 86_400 * rkind.ts_scale}).encode())
        expected["duplicate_review"] += 1
    meta_lines, described = [], set()
    for j, item in enumerate(items):
        if draw(st.integers(0, 5)) == 0:
            continue  # this item's metadata is missing from the dump
        raw, reason = draw(line(mkind, record(mkind, j, item), DAMAGE if draw(st.integers(0, 3)) == 0 else VALID))
        meta_lines.append(raw)
        if reason is None:
            described.add(item)
        else:
            expected[reason] += 1
    reviewed = {item for _, item in kept_reviews}
    for item in draw(st.lists(st.sampled_from(sorted(described)), max_size=2)) if described else []:
        meta_lines.append(json.dumps(record(mkind, 0, item)).encode())
        expected["duplicate_item"] += item in reviewed
    expected["item_without_metadata"] = sum(item not in described for _, item in kept_reviews)
    return review_lines, meta_lines, expected, len(kept_reviews), reviewed & described


@FUZZ
@given(data=st.data(), fmt=st.sampled_from(["amazon2018", "amazon2023"]), gz=st.booleans(),
       block_bytes=st.integers(64, 1024))
def test_ingest_pair_counts_every_set_aside_record_or_names_the_file(data, fmt, gz, block_bytes):
    domains = {d: data.draw(pair_domain(d, fmt)) for d in ("A", "B")}
    rkind = R18 if fmt == "amazon2018" else R23
    with tempfile.TemporaryDirectory() as tmp, bounded():
        files, failing = [], None
        for d, (reviews, meta, _, kept, _) in domains.items():
            r = write(Path(tmp) / f"{d}{rkind.suffix(gz)}", reviews, gz, True)
            m = write(Path(tmp) / f"meta_{d}{rkind.suffix(gz)}", meta, gz, True)
            files.append(DomainFiles(d, r, m, fmt))
            if failing is None and not kept:
                failing = r  # no valid review: the reviews file is named
            elif failing is None and not meta:
                failing = m  # an empty metadata dump
        event("a file is unusable" if failing else "ingested")
        if failing is not None:
            with pytest.raises(SourceError) as err:
                ingest_pair(files, now=NOW, block_bytes=block_bytes)
            assert str(failing) in str(err.value)
            return
        result = ingest_pair(files, now=NOW, block_bytes=block_bytes)
        summary(result)
    expected = sum((e for _, _, e, _, _ in domains.values()), Counter())
    got = Counter(result.quarantine["reason"].to_list())
    assert got == +expected
    assert result.items.height == sum(len(items) for *_, items in domains.values())
    assert result.interactions.height == sum(kept for _, _, _, kept, _ in domains.values()) \
        - expected["item_without_metadata"]


@st.composite
def damaged_stream(draw):
    """(bytes, suffix, how): a valid gzip file's bytes damaged one way, or random bytes."""
    lines = [json.dumps(record(R18, i)).encode() for i in range(draw(st.integers(1, 40)))]
    valid = gzip.compress(b"\n".join(lines) + b"\n", mtime=0, compresslevel=draw(st.integers(1, 9)))
    how = draw(st.sampled_from(["truncated", "bit_flip", "trailing_garbage", "leading_garbage",
                                "random_gz", "random_plain", "two_members", "blank_only"]))
    event(how)
    if how == "truncated":
        return valid[:draw(st.integers(0, len(valid) - 1))], ".json.gz", how, len(lines)
    if how == "bit_flip":
        at = draw(st.integers(0, len(valid) - 1))
        flipped = bytes([valid[at] ^ (1 << draw(st.integers(0, 7)))])
        return valid[:at] + flipped + valid[at + 1:], ".json.gz", how, len(lines)
    if how == "trailing_garbage":
        return valid + draw(st.binary(min_size=1, max_size=64)), ".json.gz", how, len(lines)
    if how == "leading_garbage":
        return draw(st.binary(min_size=1, max_size=64)) + valid, ".json.gz", how, len(lines)
    if how == "two_members":
        return valid + valid, ".json.gz", how, 2 * len(lines)
    if how == "blank_only":
        blank = b"\n".join(draw(st.lists(blank_lines, min_size=2)))
        return (gzip.compress(blank), ".json.gz", how, 0) if draw(st.booleans()) else (blank, ".json", how, 0)
    return draw(st.binary(max_size=3000)), ".json.gz" if how == "random_gz" else ".json", how, 0


@settings(FUZZ, max_examples=200)
@given(stream=damaged_stream(), block_bytes=st.integers(64, 4096))
def test_damaged_gzip_streams_give_a_result_or_name_the_file(stream, block_bytes):
    data, suffix, how, n_lines = stream
    with tempfile.TemporaryDirectory() as tmp, bounded():
        path = Path(tmp) / f"Food{suffix}"
        path.write_bytes(data)
        try:
            result = read_records(path, R18.spec(), block_bytes)
        except SourceError as exc:
            event(f"{how}: SourceError")
            assert str(path) in str(exc)
            assert how != "two_members", "a file of two gzip members is valid"
            return
    assert how not in ("truncated", "blank_only"), f"{how}: read as if it held records"
    check_consistent(result, path)
    if how == "two_members":
        assert result.frame.height == n_lines and result.quarantine.height == 0


def test_missing_file_is_named(tmp_path):
    """The documented error for a file that is not there, at both entry points."""
    path = tmp_path / "Food.json.gz"
    with pytest.raises(SourceError, match=str(path)):
        read_records(path, R18.spec())
    files = [DomainFiles("A", path, path, "amazon2018"), DomainFiles("B", path, path, "amazon2018")]
    with pytest.raises(SourceError, match=str(path)):
        ingest_pair(files, now=NOW)

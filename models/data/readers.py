"""Streaming reader for JSON-lines dumps (gzip or plain) with per-line quarantine.

Why this shape: the real dumps are up to 20 GB uncompressed, so a file is never
held whole. A background thread decompresses it into blocks of whole lines
(models/data/blocks.py), while the caller parses each block with polars'
``read_ndjson`` (fast, multi-threaded). Only a block that polars refuses, or
whose row count differs from its line count, is parsed again line by line with
``json.loads``, so that every bad line is quarantined with its number and the
good lines around it are kept. :func:`read_records` returns the parsed columns
(for files whose rows are kept, such as the metadata of reviewed items);
``models.data.spill.spill_records`` writes them to hash partitions on disk instead, so
that its peak memory is a few blocks whatever the file size (the review files).

Typing is the same on both paths. Integers and floats are checked by polars
(a string timestamp or a boolean rating is a ``wrong_type``). Polars reads any
JSON value into a string column as its text, so for identifier fields the rule
is: a string is taken as is, a number becomes its decimal text (as polars
writes it), and an object, array or boolean is a ``wrong_type``: the fast path
hands a block holding such a value to the per-line path, which decides.
"""

import ast
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl

from models.data.blocks import BLOCK_BYTES, iter_blocks
from models.data.schema import QUARANTINE
from models.data.sources import SourceError

RECORD_CAP = 2000  # characters of an offending line kept in quarantine
_LITERAL_CAP = 1 << 20  # longest line handed to ast.literal_eval
_I64 = (-(1 << 63), (1 << 63) - 1)

QUARANTINE_SCHEMA = dict(zip(QUARANTINE, (pl.String, pl.Int64, pl.String, pl.String), strict=True))


@dataclass(frozen=True, eq=False)
class RecordSpec:
    """How one kind of JSON line becomes a typed row.

    ``fields`` maps JSON keys to the dtype parsed on the fast path: ``String`` is
    tolerant free text (a non-string value is kept as its JSON text) unless the key
    is one of ``ids``; ``List(String)`` accepts a list or a lone string. ``rules``
    are ``(reason, condition)`` pairs on the renamed columns; a row failing one is
    quarantined with that reason.
    """

    fields: dict[str, pl.DataType]
    ids: tuple[str, ...]  # JSON keys of identifiers: strings, or numbers read as text
    rename: dict[str, str]
    required: tuple[str, ...]  # renamed columns that must be present and non-empty
    derive: tuple[pl.Expr, ...] = ()  # applied after renaming (e.g. ms -> s)
    rules: tuple[tuple[str, pl.Expr], ...] = ()
    literal_fallback: bool = False  # 2018 meta: accept Python-literal lines

    def out_schema(self) -> dict[str, pl.DataType]:
        """Columns of a parsed frame: the renamed fields plus ``line``."""
        return {**{self.rename.get(k, k): v for k, v in self.fields.items()}, "line": pl.Int64}


@dataclass
class Chunk:
    """One block's typed rows (with their 1-based ``line``) and its quarantined lines."""

    frame: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int = 0
    fallback: bool = False  # parsed line by line


@dataclass
class ReadResult:
    """A whole file: typed rows, quarantine, and how many lines and blocks were read."""

    frame: pl.DataFrame
    quarantine: pl.DataFrame
    lines: int = 0
    blocks: int = 0
    blocks_fallback: int = 0


def empty_quarantine() -> pl.DataFrame:
    return pl.DataFrame(schema=QUARANTINE_SCHEMA)


def quarantine_rows(source: str, rows: list[tuple[int, str, str]]) -> pl.DataFrame:
    """Quarantine frame from ``(line, reason, record)`` tuples; records are capped."""
    if not rows:
        return empty_quarantine()
    lines, reasons, records = zip(*rows, strict=True)
    return pl.DataFrame(
        {"source": [source] * len(rows), "line": list(lines), "reason": list(reasons),
         "record": [r[:RECORD_CAP] for r in records]},
        schema=QUARANTINE_SCHEMA,
    )


# ---------------------------------------------------------------- parsing


def _reject_constant(name: str) -> None:
    raise ValueError(f"{name} is not valid JSON")


def _id_text(value: Any) -> str | None:
    """An identifier as polars reads it into a string column; None for a wrong type."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _coerce(value: Any, dtype: pl.DataType, is_id: bool) -> tuple[bool, Any]:
    """Mirror polars' typing for one value on the per-line path: ``(ok, value)``."""
    if value is None:
        return True, None
    if is_id:
        text = _id_text(value)
        return text is not None, text
    if dtype == pl.String:
        text = value if isinstance(value, str) else _json_text(value)
        return text is not None, text
    if dtype == pl.Int64:
        ok = isinstance(value, int) and not isinstance(value, bool) and _I64[0] <= value <= _I64[1]
        return ok, value
    if dtype == pl.Float64:
        ok = isinstance(value, int | float) and not isinstance(value, bool)
        try:
            return ok, float(value) if ok else None
        except OverflowError:  # an integer literal beyond float64, e.g. 10**400
            return False, None
    if dtype == pl.List(pl.String):
        items = [v if isinstance(v, str) else _json_text(v)
                 for v in (value if isinstance(value, list) else [value])]
        return None not in items, items
    raise TypeError(f"unsupported field dtype {dtype}")


def _json_text(value: Any) -> str | None:
    """A non-string value as JSON text; None for a Python literal JSON cannot express (set, bytes)."""
    try:
        return json.dumps(value)
    except (TypeError, ValueError, RecursionError):
        return None


def _valid_unicode(row: dict) -> bool:
    r"""False when a kept string holds a lone surrogate (a ``\ud800`` escape): not storable text."""
    try:
        json.dumps(row, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _parse_line(raw: bytes, spec: RecordSpec) -> tuple[str | None, Any]:
    """``(None, row)`` or ``(reason, text)`` for one non-blank line."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8", raw.decode("utf-8", "replace")
    try:
        obj = json.loads(text, parse_constant=_reject_constant)
    except (ValueError, RecursionError):
        obj = _literal(text) if spec.literal_fallback else None
        if obj is None:
            return "invalid_json", text
    if not isinstance(obj, dict):
        return "not_an_object", text
    row = {}
    for key, dtype in spec.fields.items():
        ok, value = _coerce(obj.get(key), dtype, key in spec.ids)
        if not ok:
            return "wrong_type", text
        row[key] = value
    if not _valid_unicode(row):
        return "invalid_utf8", text
    return None, row


def _literal(text: str) -> Any:
    """2018 metadata lines written as Python literals (single quotes); None if not one."""
    if len(text) > _LITERAL_CAP or not text.lstrip().startswith("{"):
        return None
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, RecursionError, MemoryError, TypeError):
        return None


def _not_an_id(key: str) -> pl.Expr:
    """Text polars writes for an object, array or boolean read into a string column."""
    col = pl.col(key)
    return col.str.starts_with("{") | col.str.starts_with("[") | col.is_in(["true", "false"])


def _fast(block: bytes, n_lines: int, spec: RecordSpec) -> pl.DataFrame | None:
    """The whole block parsed by polars, or None when the per-line path must decide."""
    try:
        frame = pl.read_ndjson(io.BytesIO(block), schema=spec.fields)
    except pl.exceptions.PolarsError:
        return None
    if frame.height != n_lines:  # blank lines: line numbers would shift
        return None
    suspicious = frame.select(pl.any_horizontal(
        _not_an_id(key).fill_null(False).any() for key in spec.ids)).item()
    return None if suspicious or _has_nul(frame) else frame


def _has_nul(frame: pl.DataFrame) -> bool:
    r"""Polars reads a lone ``\ud800`` escape as NUL; the per-line path tells it from a real one."""
    checks = [pl.col(name).str.contains("\0", literal=True) if dtype == pl.String
              else pl.col(name).list.eval(pl.element().str.contains("\0", literal=True)).list.any()
              for name, dtype in frame.schema.items() if dtype in (pl.String, pl.List(pl.String))]
    return bool(checks) and frame.select(pl.any_horizontal(c.fill_null(False).any() for c in checks)).item()


def _slow(block: bytes, first: int, spec: RecordSpec, source: str):
    rows: dict[str, list] = {k: [] for k in spec.fields}
    numbers: list[int] = []
    bad: list[tuple[int, str, str]] = []
    for offset, raw in enumerate(block.split(b"\n")[:-1]):
        if not raw.strip():
            continue
        reason, value = _parse_line(raw, spec)
        if reason is not None:
            bad.append((first + offset, reason, value))
            continue
        numbers.append(first + offset)
        for key in spec.fields:
            rows[key].append(value[key])
    frame = pl.DataFrame(rows, schema=spec.fields).with_columns(
        line=pl.Series(numbers, dtype=pl.Int64))
    return frame, quarantine_rows(source, bad)


def parse_block(block: bytes, first: int, spec: RecordSpec, source: str) -> Chunk:
    """Typed rows of one block of whole lines; bad lines go to quarantine."""
    n_lines = block.count(b"\n")
    frame = _fast(block, n_lines, spec)
    fallback = frame is None
    if frame is not None:
        frame = frame.with_columns(line=pl.int_range(first, first + n_lines, dtype=pl.Int64))
        bad = empty_quarantine()
    else:
        frame, bad = _slow(block, first, spec, source)
    frame = frame.rename(spec.rename).with_columns(*spec.derive)
    checks = [("missing_field", pl.any_horizontal(
        [pl.col(c).is_null() | (pl.col(c) == "") if frame.schema[c] == pl.String
         else pl.col(c).is_null() for c in spec.required]))]
    checks += [(reason, ~cond.fill_null(False)) for reason, cond in spec.rules]
    reason = pl.lit(None, dtype=pl.String)
    for name, failed in reversed(checks):
        reason = pl.when(failed).then(pl.lit(name)).otherwise(reason)
    frame = frame.with_columns(_reason=reason)
    failed = frame.filter(pl.col("_reason").is_not_null())
    if failed.height:
        lines = block.split(b"\n")
        bad = pl.concat([bad, quarantine_rows(source, [
            (n, r, lines[n - first].decode("utf-8", "replace"))
            for n, r in zip(failed["line"], failed["_reason"], strict=True)])])
        frame = frame.filter(pl.col("_reason").is_null())
    return Chunk(frame.drop("_reason"), bad, n_lines, fallback)


def require_records(path: Path, lines: int, rows: int | None, quarantine: pl.DataFrame) -> None:
    """A file without lines, or without a single valid record, is an error, not an empty table.

    ``rows`` None skips the second check: a filtered read may rightly keep nothing.
    """
    if lines == 0:
        raise SourceError(f"raw file {path} holds no lines")
    if rows == 0:
        first = quarantine["reason"][0] if quarantine.height else "blank"
        raise SourceError(f"raw file {path} holds no valid record: all {lines} lines were "
                          f"quarantined or blank (first reason: {first})")


@dataclass
class Tally:
    """What a block-by-block read has counted so far: lines, blocks, fallbacks, quarantine."""

    lines: int = 0
    blocks: int = 0
    blocks_fallback: int = 0
    bad: list[pl.DataFrame] = field(default_factory=list)

    def quarantine(self) -> pl.DataFrame:
        return pl.concat(self.bad) if self.bad else empty_quarantine()


def iter_chunks(path: Path, spec: RecordSpec, block_bytes: int, source: str,
                tally: Tally) -> Iterator[Chunk]:
    """Each block of ``path`` parsed, with its lines, fallback and quarantine counted into ``tally``.

    The one loop of :func:`read_records` and ``models.data.spill.spill_records``, so both
    number lines and quarantine alike.
    """
    for block in iter_blocks(Path(path), block_bytes):
        chunk = parse_block(block, tally.lines + 1, spec, source)
        if chunk.quarantine.height:
            tally.bad.append(chunk.quarantine)
        tally.lines += chunk.lines
        tally.blocks += 1
        tally.blocks_fallback += chunk.fallback
        yield chunk


def read_records(path: Path, spec: RecordSpec, block_bytes: int = BLOCK_BYTES,
                 keep: pl.Expr | None = None, source: str | None = None) -> ReadResult:
    """Read a whole file block by block; ``keep`` filters rows per block (bounds memory).

    Quarantine rows name the file as ``source`` (default: ``path``). A file without a single
    valid record is an error, not an empty table.
    """
    source = str(path) if source is None else source
    tally = Tally()
    frames = [chunk.frame if keep is None else chunk.frame.filter(keep)
              for chunk in iter_chunks(path, spec, block_bytes, source, tally)]
    frame = pl.concat(frames) if frames else pl.DataFrame(schema=spec.out_schema())
    quarantine = tally.quarantine()
    require_records(path, tally.lines, frame.height if keep is None else None, quarantine)
    return ReadResult(frame, quarantine, tally.lines, tally.blocks, tally.blocks_fallback)

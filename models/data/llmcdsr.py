"""Import of the LLMCDSR processed release (Xin et al., TOIS 2025) into this pipeline's tables.

Why: it is the split the LGCD paper evaluates on (its Table 2 counts match these
files), so importing it lets every later stage run unchanged on the paper's own
evaluation data. The release has no timestamps, ratings, categories or brands:
the position in a sequence stands in for time, ratings are null, and the item
text is the sanitized title. Item indices and the train/valid/test assignment
are the release's own; only the history policy of held-out users is ours.

Pickles are untrusted input: :class:`RestrictedUnpickler` builds plain
containers and scalars only and refuses any class or function reference.
"""

import io
import pickle
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from models.data import text
from models.data.errors import UnusableDataError
from models.data.readers import RECORD_CAP, quarantine_rows
from models.data.schema import INTERACTIONS, ITEMS, SEQUENCES
from models.data.sources import SourceError
from models.data.split import CATALOG_SCHEMA, SEQUENCE_SCHEMA, HistoryPolicy

SEQUENCE_FILES = {"train_A": ("train", "single"), "train_B": ("train", "single"),
                  "train_overlap": ("train", "overlap"), "valid": ("valid", "overlap"),
                  "test": ("test", "overlap")}
# Protocols <= 3 pickle sets as a call of the builtin (Python 2 module name included).
_SAFE_GLOBALS = {(m, n) for m in ("builtins", "__builtin__") for n in ("set", "frozenset")}


class UnsafePickleError(SourceError):
    """A pickle that references a class or function; refused, never executed."""


class _Refused(pickle.UnpicklingError):
    pass


class RestrictedUnpickler(pickle.Unpickler):
    """Unpickler for dict/list/tuple/set/str/int/float/bool/None only."""

    def find_class(self, module: str, name: str):  # noqa: D102 - see class docstring
        if (module, name) in _SAFE_GLOBALS:
            return {"set": set, "frozenset": frozenset}[name]
        raise _Refused(f"global reference {module}.{name} is not allowed")

    def persistent_load(self, pid):  # noqa: D102
        raise _Refused("persistent references are not allowed")


def load_pickle(path: Path):
    """Load a pickle of plain containers and scalars; anything else raises UnsafePickleError."""
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"release file {path} does not exist")
    try:
        return RestrictedUnpickler(io.BytesIO(path.read_bytes())).load()
    except _Refused as exc:
        raise UnsafePickleError(f"refusing pickle {path}: {exc}") from exc
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, IndexError, KeyError,
            AttributeError, MemoryError, RecursionError) as exc:
        raise SourceError(f"pickle {path} is corrupt or truncated ({exc!r})") from exc


@dataclass
class Release:
    """All tables of an imported release (schemas in models.data.schema)."""

    interactions: pl.DataFrame
    items: pl.DataFrame
    quarantine: pl.DataFrame
    item_catalog: pl.DataFrame
    sequences: pl.DataFrame
    num_items: dict[str, int]
    instance_num: dict[str, int]


def _ints(path: Path, count: int) -> list[int]:
    try:
        values = [int(v) for v in path.read_text().split()]
    except (OSError, ValueError) as exc:
        raise SourceError(
            f"release file {path} is missing or not a list of integers ({exc})") from exc
    if len(values) != count:
        raise SourceError(f"release file {path} must hold {count} integers, found {len(values)}")
    return values


def _catalog(release_dir: Path, domain: str, n_items: int) -> pl.DataFrame:
    """Items of one domain with the release's index and sanitized title."""
    index_file = release_dir / f"item_set_{domain}.pkl"
    text_file = release_dir / f"text_{domain}.pkl"
    index, titles = load_pickle(index_file), load_pickle(text_file)
    if not isinstance(index, dict) or not all(
            isinstance(k, str) and isinstance(v, int) for k, v in index.items()):
        raise UnusableDataError(f"{index_file} must map ASIN strings to integer indices")
    if sorted(index.values()) != list(range(n_items)):
        raise UnusableDataError(f"{index_file}: indices are not exactly 0..{n_items - 1} "
                                f"as num.txt says ({len(index)} entries)")
    if not isinstance(titles, dict):
        raise UnusableDataError(f"{text_file} must map ASIN strings to titles")
    rows = sorted(index.items(), key=lambda kv: kv[1])
    raw = [t if isinstance(t := titles.get(a), str) else None for a, _ in rows]
    frame = pl.DataFrame({"item": [a for a, _ in rows], "index": [i for _, i in rows], "raw": raw},
                         schema={"item": pl.String, "index": pl.Int32, "raw": pl.String})
    frame = frame.with_columns(domain=pl.lit(domain),
                               title=text.sanitize_expr(pl.col("raw"), text.TITLE_CAP))
    return frame.with_columns(text=pl.col("title"))


def _read_sequences(path: Path, n_a: int, total: int, expect: str
                    ) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One event per (user, position) of the valid lines, and the quarantine of the rest.

    ``expect`` is the domain set a line must cover: "A", "B" or "AB" (overlap files).
    Parsed with polars, because the release has half a million item positions.
    """
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise SourceError(f"release file {path} cannot be read ({exc})") from exc
    parsed = pl.DataFrame({"raw": lines}, schema={"raw": pl.String}).with_row_index(
        "line", offset=1).with_columns(
        parts=pl.col("raw").str.split_exact("\t", 1)).with_columns(
        uid=pl.col("parts").struct.field("field_0"),
        global_=pl.col("parts").struct.field("field_1").str.split(",")
        .list.eval(pl.element().str.strip_chars().cast(pl.Int64, strict=False)))
    in_range = pl.element().is_not_null() & pl.element().is_between(0, total - 1)
    valid = ((pl.col("uid").str.len_chars() > 0)
             & pl.col("global_").list.eval(in_range).list.all().fill_null(False))
    has_a = pl.col("global_").list.eval(pl.element() < n_a).list.any()
    has_b = pl.col("global_").list.eval(pl.element() >= n_a).list.any()
    covers = {"A": has_a & ~has_b, "B": has_b & ~has_a,
              "AB": has_a & has_b & (pl.col("global_").list.len() >= 2)}[expect]
    parsed = parsed.with_columns(
        reason=pl.when(~valid).then(pl.lit("invalid_line"))
        .when(~covers).then(pl.lit("wrong_domain")).otherwise(pl.lit(None, dtype=pl.String)))
    bad = parsed.filter(pl.col("reason").is_not_null()).select(
        source=pl.lit(str(path)), line=pl.col("line").cast(pl.Int64), reason="reason",
        record=pl.col("raw").str.slice(0, RECORD_CAP))
    events = (parsed.filter(pl.col("reason").is_null())
              .select(user=pl.lit(f"{path.stem}:") + pl.col("uid"), global_="global_")
              .with_columns(timestamp=pl.int_ranges(pl.col("global_").list.len()))
              .explode("global_", "timestamp"))
    return events, bad


def import_release(release_dir: Path, history_policy: HistoryPolicy = "strict") -> Release:
    """Read every file of the release into interactions, items, catalog and sequences."""
    release_dir = Path(release_dir)
    if not release_dir.is_dir():
        raise SourceError(f"LLMCDSR release folder {release_dir} does not exist")
    n_a, n_b = _ints(release_dir / "num.txt", 2)
    counts = _ints(release_dir / "instance_num.txt", 3)
    catalogs = pl.concat([_catalog(release_dir, "A", n_a), _catalog(release_dir, "B", n_b)])
    names = catalogs.select("domain", "index", "item")
    untitled = catalogs.filter(pl.col("title") == "")
    bad = quarantine_rows(str(release_dir / "text_A.pkl"), [
        (0, "missing_field", f"{d}:{a} has no title")
        for d, a in untitled.select("domain", "item").rows()])
    parts = []
    for stem, (split, kind) in SEQUENCE_FILES.items():
        path = release_dir / f"{stem}.txt"
        expect = "AB" if kind == "overlap" else stem[-1]
        events, wrong = _read_sequences(path, n_a, n_a + n_b, expect)
        bad = pl.concat([bad, wrong])
        parts.append(events.with_columns(split=pl.lit(split), kind=pl.lit(kind)))
    is_a = pl.col("global_") < n_a
    events = pl.concat(parts).with_columns(
        domain=pl.when(is_a).then(pl.lit("A")).otherwise(pl.lit("B")),
        index=pl.when(is_a).then(pl.col("global_")).otherwise(pl.col("global_") - n_a)
        .cast(pl.Int32),
        timestamp=pl.col("timestamp").cast(pl.Int64))
    events = events.join(names, on=["domain", "index"], how="left", maintain_order="left")
    interactions = events.with_columns(rating=pl.lit(None, dtype=pl.Float64)).select(INTERACTIONS)
    items = catalogs.with_columns(category=pl.lit(""), brand=pl.lit(""),
                                  description=pl.lit("")).select(ITEMS)
    return Release(
        interactions=interactions, items=items, quarantine=bad,
        item_catalog=catalogs.select(list(CATALOG_SCHEMA)).cast(CATALOG_SCHEMA),
        sequences=_sequences(events, history_policy),
        num_items={"A": n_a, "B": n_b},
        instance_num=dict(zip(("train_A", "train_B", "train_overlap"), counts, strict=True)),
    )


def _sequences(events: pl.DataFrame, policy: HistoryPolicy) -> pl.DataFrame:
    """Release sequences in the SEQUENCES schema; the last item is the overlap target."""
    last = pl.col("timestamp") == pl.col("timestamp").max().over("user")
    events = events.with_columns(
        is_target=(pl.col("kind") == "overlap") & last,
        target_domain=pl.col("domain").filter(last).first().over("user"))
    keep = ~pl.col("is_target")
    if policy == "strict":
        keep = keep & ((pl.col("split") == "train") | (pl.col("domain") != pl.col("target_domain")))
    history = (events.filter(keep).group_by("user", maintain_order=True)
               .agg(pl.col("split", "kind").first(), items="index", domains="domain",
                    timestamps="timestamp", home=pl.col("domain").first()))
    targets = events.filter("is_target").select("user", target_item="index",
                                                target_domain="domain")
    seqs = history.join(targets, on="user", how="left", maintain_order="left").with_columns(
        source_domain=pl.when(pl.col("kind") == "single").then(pl.col("home"))
        .when(pl.col("target_domain") == "A").then(pl.lit("B")).otherwise(pl.lit("A")))
    return seqs.select(SEQUENCES).cast(SEQUENCE_SCHEMA)


def table2(release: Release) -> dict[str, int]:
    """Count what the paper's Table 2 (Food-Kitchen) reports, plus the held-out sizes."""
    seq, cat = release.sequences, release.item_catalog
    single = seq.filter(pl.col("kind") == "single")
    test = seq.filter(pl.col("split") == "test")
    return {
        "items_A": cat.filter(pl.col("domain") == "A").height,
        "items_B": cat.filter(pl.col("domain") == "B").height,
        "single_A": single.filter(pl.col("source_domain") == "A").height,
        "single_B": single.filter(pl.col("source_domain") == "B").height,
        "overlap_train": seq.filter((pl.col("kind") == "overlap")
                                    & (pl.col("split") == "train")).height,
        "valid": seq.filter(pl.col("split") == "valid").height,
        "test": test.height,
        "test_target_A": test.filter(pl.col("target_domain") == "A").height,
        "test_target_B": test.filter(pl.col("target_domain") == "B").height,
    }

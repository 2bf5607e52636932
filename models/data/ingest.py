"""Raw Amazon dumps (2018 or 2023 format) -> interactions, items and quarantine for one pair.

Why in this order, per domain: reviews first, so that only the metadata of
reviewed items is kept (the Books metadata alone has 2.9 million records, most
never reviewed in a one-month window); then duplicates and reviews of items
without metadata are set aside. Nothing is dropped without a quarantine row:
the line of the review or metadata record and the reason. The reviews are spilled
to disk by user and cleaned one partition at a time, so memory does not grow with the
dump; the interactions come back as a Parquet file.
"""

import shutil
import tempfile
import time
import uuid
import weakref
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq

from models.data import text
from models.data.readers import RECORD_CAP, RecordSpec, empty_quarantine, read_records
from models.data.schema import INTERACTIONS, ITEMS
from models.data.spill import SpillResult, merge_distinct, spill_records

EARLIEST_PLAUSIBLE = 820_454_400  # 1996-01-01, before Amazon's first review
FUTURE_SLACK_S = 86_400  # clocks and time zones: a day ahead is still "now"
FORMATS = ("amazon2018", "amazon2023")
_PAIR_SEED = 0x5EED  # any fixed seed: the hash only preselects rows, strings decide
# Fixed writer settings: the same interactions give the same bytes, hence the same version.
_PARQUET_OPTIONS = {"compression": "zstd", "compression_level": 3, "write_statistics": True}
_INTERACTIONS_ARROW = pa.schema([("user", pa.large_string()), ("item", pa.large_string()),
                                 ("timestamp", pa.int64()), ("rating", pa.float64()),
                                 ("domain", pa.large_string())])


@dataclass(frozen=True)
class DomainFiles:
    """The two raw files of one domain and their format (``amazon2018`` | ``amazon2023``).

    ``reviews``/``meta`` name the files in quarantine rows. Relative names are read from
    ``base``: the generated demo corpus is named relative to the storage root, so that its
    quarantine rows (and their data version) do not depend on where storage lives.
    """

    domain: str
    reviews: Path
    meta: Path
    format: str
    base: Path | None = None

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ValueError(f"format={self.format!r}; allowed {sorted(FORMATS)}")

    def location(self, name: Path) -> Path:
        """Where the file named ``name`` is read from."""
        return name if self.base is None else self.base / name


@dataclass
class Ingested:
    """Both domains' tables; the interactions stay on disk (tens of millions of rows)."""

    interactions_file: Path  # Parquet, models.data.schema.INTERACTIONS
    items: pl.DataFrame  # models.data.schema.ITEMS
    quarantine: pl.DataFrame  # models.data.schema.QUARANTINE
    lines: dict[str, int] = field(default_factory=dict)  # file -> lines read
    fallback_blocks: int = 0  # blocks parsed line by line because of a bad line
    per_domain: dict[str, dict[str, int]] = field(default_factory=dict)  # interactions, users, items
    overlapping_users: int = 0

    @property
    def interactions(self) -> pl.DataFrame:
        """The whole interactions table in memory (tests and small corpora)."""
        return pl.read_parquet(self.interactions_file)


def review_spec(fmt: str, now: int) -> RecordSpec:
    """Review lines: user, item, timestamp (unix seconds), rating."""
    plausible = pl.col("timestamp").is_between(EARLIEST_PLAUSIBLE, now + FUTURE_SLACK_S)
    if fmt == "amazon2018":
        return RecordSpec(
            fields={"reviewerID": pl.String, "asin": pl.String,
                    "unixReviewTime": pl.Int64, "overall": pl.Float64},
            ids=("reviewerID", "asin"),
            rename={"reviewerID": "user", "asin": "item", "unixReviewTime": "timestamp",
                    "overall": "rating"},
            required=("user", "item", "timestamp"),
            rules=(("implausible_timestamp", plausible),),
        )
    return RecordSpec(  # 2023: the item is the parent ASIN, the one metadata is keyed by
        fields={"user_id": pl.String, "parent_asin": pl.String,
                "timestamp": pl.Int64, "rating": pl.Float64},
        ids=("user_id", "parent_asin"),
        rename={"user_id": "user", "parent_asin": "item"},
        required=("user", "item", "timestamp"),
        derive=(pl.col("timestamp") // 1000,),  # milliseconds -> seconds
        rules=(("implausible_timestamp", plausible),),
    )


def meta_spec(fmt: str) -> RecordSpec:
    """Metadata lines: item, title, category path, brand, description."""
    if fmt == "amazon2018":
        return RecordSpec(
            fields={"asin": pl.String, "title": pl.String, "category": pl.List(pl.String),
                    "brand": pl.String, "description": pl.List(pl.String),
                    "main_cat": pl.String},
            ids=("asin",),
            rename={"asin": "item", "category": "categories", "main_cat": "main_category"},
            required=("item", "title"),
            literal_fallback=True,
        )
    return RecordSpec(
        fields={"parent_asin": pl.String, "title": pl.String,
                "categories": pl.List(pl.String), "store": pl.String,
                "description": pl.List(pl.String), "main_category": pl.String},
        ids=("parent_asin",),
        rename={"parent_asin": "item", "store": "brand"},
        required=("item", "title"),
    )


def _set_aside(frame: pl.DataFrame, source: str, reason: str, columns: list[str]) -> pl.DataFrame:
    return frame.select(
        source=pl.lit(source), line=pl.col("line"), reason=pl.lit(reason),
        record=pl.struct(columns).struct.json_encode().str.slice(0, RECORD_CAP),
    )


def drop_duplicate_reviews(frame: pl.DataFrame, source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Keep each (user, item)'s earliest review (ties: first line); quarantine the rest.

    Why the hash first: finding duplicates on the (user, item) strings row-encodes them,
    which doubled a partition's memory; equal pairs have equal hashes, so only the rows
    whose 64-bit pair hash repeats (a few percent) are compared as strings.
    """
    pair_hash = pl.struct("user", "item").hash(_PAIR_SEED)
    candidates = frame.filter(pair_hash.is_duplicated())
    dup = candidates.filter(pl.struct("user", "item").is_duplicated())
    if dup.height == 0:
        return frame, empty_quarantine()
    later = dup.sort("timestamp", "line").filter(~pl.struct("user", "item").is_first_distinct())
    bad = _set_aside(later.sort("line"), source, "duplicate_review",
                     ["user", "item", "timestamp", "rating"])
    return frame.filter(~pl.col("line").is_in(later["line"].implode())), bad


def _category_leaf(meta: pl.DataFrame) -> pl.DataFrame:
    """Most specific non-empty category per metadata line (the last element of the path)."""
    return (meta.select("line", "categories").explode("categories")
            .with_columns(category=text.sanitize_expr(pl.col("categories"), text.CATEGORY_CAP))
            .filter(pl.col("category") != "")
            .group_by("line").agg(pl.col("category").last()))


def normalize_items(meta: pl.DataFrame, domain: str,
                    source: str) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Sanitized items (schema ITEMS); duplicate or title-less records are quarantined."""
    main = text.sanitize_expr(pl.col("main_category"), text.CATEGORY_CAP)
    leaves = _category_leaf(meta)
    items = meta.join(leaves, on="line", how="left", maintain_order="left").with_columns(
        title=text.sanitize_expr(pl.col("title"), text.TITLE_CAP),
        category=pl.coalesce(pl.col("category"), main),
        brand=text.sanitize_expr(pl.col("brand"), text.BRAND_CAP),
        description=text.sanitize_expr(pl.col("description").list.join(" "), text.DESCRIPTION_CAP),
        domain=pl.lit(domain),
    )
    untitled = items.filter(pl.col("title") == "")
    items = items.filter(pl.col("title") != "")
    repeated = items.filter(~pl.col("item").is_first_distinct())
    items = items.filter(pl.col("item").is_first_distinct())
    bad = pl.concat([
        _set_aside(meta.filter(pl.col("line").is_in(untitled["line"].implode())), source,
                   "missing_field", ["item", "title"]),
        _set_aside(repeated, source, "duplicate_item", ["item", "title"]),
    ])
    items = items.with_columns(
        text=text.join_text(pl.col("title"), pl.col("category"), pl.col("brand")))
    return items.select(ITEMS), bad


PARTITION_BYTES = 32 << 20  # gzip review bytes per partition: 1.1M synthetic reviews, fewer real ones
PLAIN_RATIO = 5  # a plain JSON-lines file is about 5x its gzip size


def partition_count(domains: list[DomainFiles]) -> int:
    """Partitions for a pair's review files: one per PARTITION_BYTES of the larger file.

    Both domains use the same count, so that partition i of each holds the same users.
    """
    sizes = []
    for files in domains:
        path = files.location(files.reviews)
        size = path.stat().st_size if path.is_file() else 0
        sizes.append(size if path.suffix == ".gz" else size // PLAIN_RATIO)
    return max(1, min(256, -(-max(sizes) // PARTITION_BYTES)))


@dataclass
class _Domain:
    """One domain after its files were read: spilled reviews, items and the quarantine so far."""

    files: DomainFiles
    reviews: SpillResult
    items: pl.DataFrame
    meta_quarantine: pl.DataFrame  # unreadable, untitled and repeated metadata records
    lines: dict[str, int]
    fallback: int


def _read_domain(files: DomainFiles, now: int, block_bytes: int, partitions: int,
                 folder: Path) -> _Domain:
    """Spill one domain's reviews by user, then read the metadata of the reviewed items."""
    reviews = spill_records(files.location(files.reviews), review_spec(files.format, now),
                            folder, partitions, "user", block_bytes,
                            source=str(files.reviews), distinct=("item",))
    reviewed = reviews.distinct["item"].implode()
    meta = read_records(files.location(files.meta), meta_spec(files.format), block_bytes,
                        keep=pl.col("item").is_in(reviewed), source=str(files.meta))
    items, meta_bad = normalize_items(meta.frame, files.domain, str(files.meta))
    return _Domain(files, reviews, items, pl.concat([meta.quarantine, meta_bad]),
                   {str(files.reviews): reviews.lines, str(files.meta): meta.lines},
                   reviews.blocks_fallback + meta.blocks_fallback)


def _clean_partition(domain: _Domain, number: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """One partition's interactions (duplicates and orphans set aside) and its quarantine rows."""
    frame = domain.reviews.read(number)
    source = str(domain.files.reviews)
    frame, duplicates = drop_duplicate_reviews(frame, source)
    orphan = ~pl.col("item").is_in(domain.items["item"].implode())
    orphans = _set_aside(frame.filter(orphan), source, "item_without_metadata",
                         ["user", "item", "timestamp", "rating"])
    interactions = frame.filter(~orphan).with_columns(domain=pl.lit(domain.files.domain))
    return interactions.select(INTERACTIONS), pl.concat([duplicates, orphans])


def _write_interactions(domains: list[_Domain], partitions: int,
                        out: Path) -> tuple[dict, int, dict[str, pl.DataFrame]]:
    """Write every partition's clean interactions to ``out``.

    Returns the per-domain counts, the overlapping users and each domain's reviews set aside
    (duplicates and items without metadata, in line order).

    Partitions are written in order, each domain's rows in line order within one, so the
    file is the same for the same input. Users are counted per partition (a user's rows all
    share one), items from the union of their distinct values.
    """
    counts = {d.files.domain: {"interactions": 0, "users": 0} for d in domains}
    items: dict[str, list[pl.Series]] = {d.files.domain: [] for d in domains}
    set_aside: dict[str, list[pl.DataFrame]] = {d.files.domain: [] for d in domains}
    overlapping = 0
    with pq.ParquetWriter(out, _INTERACTIONS_ARROW, **_PARQUET_OPTIONS) as writer:
        for number in range(partitions):
            users = []
            for domain in domains:
                frame, bad = _clean_partition(domain, number)
                name = domain.files.domain
                set_aside[name].append(bad)
                counts[name]["interactions"] += frame.height
                partition_users = frame["user"].unique()
                counts[name]["users"] += partition_users.len()
                users.append(partition_users)
                items[name] = merge_distinct([*items[name], frame["item"].unique()])
                if frame.height:
                    writer.write_table(frame.to_arrow().cast(_INTERACTIONS_ARROW))
            overlapping += pl.concat(users).is_duplicated().sum() // 2 if len(users) == 2 else 0
    for name, found in items.items():  # one series a partition at least
        counts[name]["items"] = pl.concat(found).n_unique()
    return counts, int(overlapping), {name: pl.concat(bad).sort("line")
                                      for name, bad in set_aside.items()}


def ingest_pair(domains: list[DomainFiles], now: int | None = None,
                block_bytes: int = 16 << 20, workdir: Path | None = None,
                partitions: int | None = None) -> Ingested:
    """Both domains of a pair: interactions written to ``workdir``, items and quarantine in memory.

    Why partitions: the reviews are the only table that grows with the dump (21.9M reviews
    for Home and Kitchen 2018), so they never sit in memory whole. Each review file is
    spilled by a hash of the user, and duplicates and reviews of items without metadata are
    set aside one partition at a time; peak memory is one partition of both domains. Without
    ``workdir`` the result owns a temporary folder, removed when it is garbage-collected.
    ``partitions`` defaults to :func:`partition_count`.
    """
    now = int(time.time()) if now is None else now
    ordered = sorted(domains, key=lambda d: d.domain)
    partitions = partition_count(ordered) if partitions is None else partitions
    owned = workdir is None
    workdir = Path(tempfile.mkdtemp(prefix="lgcd-ingest-")) if owned else Path(workdir)
    spill = workdir / f"spill-{uuid.uuid4().hex}"
    try:
        read = [_read_domain(files, now, block_bytes, partitions, spill / files.domain)
                for files in ordered]
        out = workdir / f"interactions-{uuid.uuid4().hex}.parquet"
        per_domain, overlapping, set_aside = _write_interactions(read, partitions, out)
    except BaseException:
        shutil.rmtree(workdir if owned else spill, ignore_errors=True)
        raise
    shutil.rmtree(spill, ignore_errors=True)
    result = Ingested(
        out,
        pl.concat([d.items for d in read]),
        pl.concat([q for d in read for q in (d.reviews.quarantine, set_aside[d.files.domain],
                                             d.meta_quarantine)]),
        {k: v for d in read for k, v in d.lines.items()},
        sum(d.fallback for d in read),
        per_domain,
        overlapping,
    )
    if owned:
        weakref.finalize(result, shutil.rmtree, workdir, ignore_errors=True)
    return result


def summary(result: Ingested) -> dict:
    """Summarize counts for asset metadata: per reason, per domain, lines read."""
    reasons = dict(result.quarantine.group_by("reason").len().sort("reason").iter_rows())
    return {"quarantine_by_reason": reasons, "per_domain": result.per_domain,
            "overlapping_users": result.overlapping_users, "lines_read": result.lines,
            "fallback_blocks": result.fallback_blocks}

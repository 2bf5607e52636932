"""Raw Amazon dumps (2018 or 2023 format) -> interactions, items and quarantine for one pair.

Why in this order, per domain: reviews first, so that only the metadata of
reviewed items is kept (the Books metadata alone has 2.9 million records, most
never reviewed in a one-month window); then duplicates and reviews of items
without metadata are set aside. Nothing is dropped without a quarantine row:
the line of the review or metadata record and the reason.
"""

import time
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from models import text
from models.readers import RECORD_CAP, RecordSpec, empty_quarantine, read_records
from models.schema import INTERACTIONS, ITEMS

EARLIEST_PLAUSIBLE = 820_454_400  # 1996-01-01, before Amazon's first review
FUTURE_SLACK_S = 86_400  # clocks and time zones: a day ahead is still "now"
FORMATS = ("amazon2018", "amazon2023")


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
    interactions: pl.DataFrame  # models.schema.INTERACTIONS
    items: pl.DataFrame  # models.schema.ITEMS
    quarantine: pl.DataFrame  # models.schema.QUARANTINE
    lines: dict[str, int] = field(default_factory=dict)  # file -> lines read
    fallback_blocks: int = 0  # blocks parsed line by line because of a bad line


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
    """Keep each (user, item)'s earliest review (ties: first line); quarantine the rest."""
    dup = frame.filter(pl.struct("user", "item").is_duplicated())
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


def ingest_domain(files: DomainFiles, now: int, block_bytes: int) -> Ingested:
    """One domain's interactions and items; raises SourceError for unusable files."""
    reviews = read_records(files.location(files.reviews), review_spec(files.format, now),
                           block_bytes, source=str(files.reviews))
    frame, duplicates = drop_duplicate_reviews(reviews.frame, str(files.reviews))
    reviewed = frame["item"].unique().implode()
    meta = read_records(files.location(files.meta), meta_spec(files.format), block_bytes,
                        keep=pl.col("item").is_in(reviewed), source=str(files.meta))
    items, meta_bad = normalize_items(meta.frame, files.domain, str(files.meta))
    orphan = ~pl.col("item").is_in(items["item"].implode())
    orphans = _set_aside(frame.filter(orphan), str(files.reviews), "item_without_metadata",
                         ["user", "item", "timestamp", "rating"])
    interactions = frame.filter(~orphan).with_columns(domain=pl.lit(files.domain))
    quarantine = pl.concat([reviews.quarantine, duplicates, orphans, meta.quarantine, meta_bad])
    return Ingested(interactions.select(INTERACTIONS), items, quarantine,
                    {str(files.reviews): reviews.lines, str(files.meta): meta.lines},
                    reviews.blocks_fallback + meta.blocks_fallback)


def ingest_pair(domains: list[DomainFiles], now: int | None = None,
                block_bytes: int = 16 << 20) -> Ingested:
    """Both domains of a pair, concatenated in domain order."""
    now = int(time.time()) if now is None else now
    ordered = sorted(domains, key=lambda d: d.domain)
    parts = [ingest_domain(files, now, block_bytes) for files in ordered]
    return Ingested(
        pl.concat([p.interactions for p in parts]),
        pl.concat([p.items for p in parts]),
        pl.concat([p.quarantine for p in parts]),
        {k: v for p in parts for k, v in p.lines.items()},
        sum(p.fallback_blocks for p in parts),
    )


def summary(result: Ingested) -> dict:
    """Summarize counts for asset metadata: per reason, per domain, lines read."""
    reasons = dict(result.quarantine.group_by("reason").len().sort("reason").iter_rows())
    per_domain = {
        d: {"interactions": g.height, "users": g["user"].n_unique(), "items": g["item"].n_unique()}
        for (d,), g in result.interactions.group_by("domain", maintain_order=True)
    }
    users = result.interactions.group_by("user").agg(pl.col("domain").n_unique())
    return {"quarantine_by_reason": reasons, "per_domain": per_domain,
            "overlapping_users": int((users["domain"] == 2).sum()), "lines_read": result.lines,
            "fallback_blocks": result.fallback_blocks}

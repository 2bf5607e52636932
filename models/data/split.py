"""The paper's cross-domain split (sections 3.1 and 4.1.1) into item_catalog and sequences.

Overlapping users (interactions in both domains) are the only ones whose
cross-domain ground truth is known: the domain of their last item is the target
domain, and the earlier items of that domain are removed from the history, so
history and ground truth lie in different domains. ``train_fraction`` of them
are training anchors (full mixed sequence, last item as target); the rest are
split in half into validation and test cold-start users. Every single-domain
sequence is training data. Users are shuffled with ``seed`` after sorting, so
the split depends only on the data and the seed.
"""

from dataclasses import dataclass
from typing import Literal

import numpy as np
import polars as pl

from models.data.errors import UnusableDataError
from models.data.schema import ITEM_CATALOG, SEQUENCES

HistoryPolicy = Literal["strict", "full"]

SEQUENCE_SCHEMA = {
    "user": pl.String, "split": pl.String, "kind": pl.String, "items": pl.List(pl.Int32),
    "domains": pl.List(pl.String), "timestamps": pl.List(pl.Int64), "target_item": pl.Int32,
    "target_domain": pl.String, "source_domain": pl.String,
}
CATALOG_SCHEMA = {"item": pl.String, "domain": pl.String, "index": pl.Int32,
                  "title": pl.String, "text": pl.String}


@dataclass(frozen=True)
class SplitConfig:
    train_fraction: float = 0.8  # overlapping users used as training anchors
    seed: int = 0
    history_policy: HistoryPolicy = "strict"  # valid/test history: source domain only, or all

    def __post_init__(self) -> None:
        if not 0.0 < self.train_fraction < 1.0:
            raise ValueError(f"train_fraction={self.train_fraction!r}; allowed (0, 1)")
        if self.history_policy not in ("strict", "full"):
            raise ValueError(f"history_policy={self.history_policy!r}; allowed strict, full")


def build_catalog(items: pl.DataFrame) -> pl.DataFrame:
    """One row per item; ``index`` is 0-based within its domain, in item-id order."""
    return (items.sort("domain", "item")
            .with_columns(index=pl.int_range(pl.len(), dtype=pl.Int32).over("domain"))
            .select(ITEM_CATALOG).cast(CATALOG_SCHEMA))


def assign_overlap_splits(users: list[str], cfg: SplitConfig) -> dict[str, str]:
    """User -> train/valid/test for overlapping users; at least one valid and one test user."""
    users = sorted(users)
    n = len(users)
    n_train = int(round(cfg.train_fraction * n))
    rest = n - n_train
    if rest < 2:
        raise UnusableDataError(
            f"only {n} overlapping users after filtering: with train_fraction="
            f"{cfg.train_fraction} fewer than 2 are left for validation and test")
    n_valid = rest // 2
    order = np.random.default_rng(cfg.seed).permutation(n)
    labels = np.array(["train"] * n_train + ["valid"] * n_valid + ["test"] * (rest - n_valid))
    return {users[j]: str(labels[pos]) for pos, j in enumerate(order)}


def build_sequences(interactions: pl.DataFrame, catalog: pl.DataFrame,
                    cfg: SplitConfig) -> pl.DataFrame:
    """Per-user chronological sequences (schema SEQUENCES); ties broken by domain, then index."""
    events = (interactions.join(catalog.select("item", "domain", "index"), on=["item", "domain"])
              .sort("user", "timestamp", "domain", "index")
              .with_columns(position=pl.int_range(pl.len()).over("user"),
                            length=pl.len().over("user"),
                            n_domains=pl.col("domain").n_unique().over("user")))
    overlap_users = events.filter(pl.col("n_domains") == 2)["user"].unique().to_list()
    splits = assign_overlap_splits(overlap_users, cfg)
    split_frame = pl.DataFrame({"user": list(splits), "split": list(splits.values())},
                               schema={"user": pl.String, "split": pl.String})
    last = (events.filter((pl.col("n_domains") == 2) & (pl.col("position") == pl.col("length") - 1))
            .select("user", target_item="index", target_domain="domain"))
    events = (events.join(split_frame, on="user", how="left")
              .join(last, on="user", how="left")
              .with_columns(pl.col("split").fill_null("train")))
    is_target = pl.col("target_item").is_not_null() & (pl.col("position") == pl.col("length") - 1)
    keep = ~is_target
    if cfg.history_policy == "strict":  # cold-start users see only their source domain
        keep = keep & ((pl.col("split") == "train") | (pl.col("domain") != pl.col("target_domain")))
    history = (events.filter(keep)
               .group_by("user", maintain_order=True)
               .agg(items="index", domains="domain", timestamps="timestamp",
                    split=pl.col("split").first(), n_domains=pl.col("n_domains").first(),
                    first_domain=pl.col("domain").first()))
    sequences = history.join(last, on="user", how="left").with_columns(
        kind=pl.when(pl.col("n_domains") == 2).then(pl.lit("overlap")).otherwise(pl.lit("single")),
        source_domain=pl.when(pl.col("n_domains") == 2)
        .then(pl.when(pl.col("target_domain") == "A").then(pl.lit("B")).otherwise(pl.lit("A")))
        .otherwise(pl.col("first_domain")),
    )
    order = {"train": 0, "valid": 1, "test": 2}
    return (sequences.sort(pl.col("split").replace_strict(order), "kind", "user")
            .select(SEQUENCES).cast(SEQUENCE_SCHEMA))


def make_split(interactions: pl.DataFrame, items: pl.DataFrame,
               cfg: SplitConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(item_catalog, sequences)`` from filtered interactions and items."""
    catalog = build_catalog(items)
    return catalog, build_sequences(interactions, catalog, cfg)


def leakage(sequences: pl.DataFrame) -> list[str]:
    """Users that appear both in training and in validation or test (must be empty)."""
    train = set(sequences.filter(pl.col("split") == "train")["user"].to_list())
    held_out = sequences.filter(pl.col("split") != "train")["user"].to_list()
    return sorted(train.intersection(held_out))


def history_violations(sequences: pl.DataFrame, strict: bool) -> dict[str, int]:
    """Held-out sequences whose history breaks the protocol (all counts must be 0).

    Every history must be non-empty and hold a source-domain item, the source must
    differ from the target domain, and under ``strict`` no history item may lie
    outside the source domain.
    """
    held = sequences.filter(pl.col("split").is_in(["valid", "test"]))
    foreign = held.explode("domains").filter(pl.col("domains") != pl.col("source_domain"))
    return {
        "empty_history": held.filter(pl.col("items").list.len() == 0).height,
        "no_source_item": held.filter(
            ~pl.col("domains").list.contains(pl.col("source_domain"))).height,
        "source_is_target": held.filter(
            pl.col("source_domain") == pl.col("target_domain")).height,
        "foreign_domain_history": foreign["user"].n_unique() if strict else 0,
    }

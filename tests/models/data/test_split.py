"""The cross-domain split: invariants, policies, determinism."""

import numpy as np
import polars as pl
import pytest

from models.data.errors import UnusableDataError
from models.data.schema import ITEM_CATALOG, SEQUENCES
from models.data.split import SplitConfig, history_violations, leakage, make_split


def interactions(seed: int = 0, n_users: int = 200) -> pl.DataFrame:
    """Users with 3-8 events; a third of them in both domains; timestamps unique per user."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_users):
        kind = u % 3  # 0: A only, 1: B only, 2: both
        for t in range(int(rng.integers(3, 9))):
            domain = "AB"[kind] if kind < 2 else "AB"[int(rng.integers(2))]
            rows.append((f"U{u:03d}", f"{domain}{int(rng.integers(30))}", 1_000 + 10 * t + u, 1.0,
                         domain))
        if kind == 2:  # make sure both domains occur
            rows.append((f"U{u:03d}", "A0", 999, 1.0, "A"))
            rows.append((f"U{u:03d}", "B0", 998, 1.0, "B"))
    return pl.DataFrame(rows, schema=["user", "item", "timestamp", "rating", "domain"], orient="row")


def items_of(frame: pl.DataFrame) -> pl.DataFrame:
    return (frame.select("item", "domain").unique()
            .with_columns(title=pl.col("item"), text=pl.col("item")))


def split(cfg=None, frame=None):
    cfg = SplitConfig() if cfg is None else cfg
    frame = interactions() if frame is None else frame
    return make_split(frame, items_of(frame), cfg)


def test_catalog_indices_are_dense_per_domain():
    catalog, _ = split()
    assert catalog.columns == list(ITEM_CATALOG)
    for domain in "AB":
        idx = catalog.filter(pl.col("domain") == domain)["index"].to_list()
        assert sorted(idx) == list(range(len(idx)))


def test_users_kinds_and_fractions():
    frame = interactions()
    _, seqs = split(frame=frame)
    assert seqs.columns == list(SEQUENCES)
    assert seqs["user"].n_unique() == seqs.height == frame["user"].n_unique()
    single = seqs.filter(pl.col("kind") == "single")
    assert (single["split"] == "train").all() and single["target_item"].is_null().all()
    assert (single["source_domain"] == single["domains"].list.first()).all()
    overlap = seqs.filter(pl.col("kind") == "overlap")
    counts = dict(overlap.group_by("split").len().iter_rows())
    assert counts["train"] == round(0.8 * overlap.height)
    assert abs(counts["valid"] - counts["test"]) <= 1
    assert leakage(seqs) == []


def test_target_is_the_last_item_and_histories_follow_the_policy():
    frame = interactions()
    catalog, strict = split(SplitConfig(history_policy="strict"), frame)
    _, full = split(SplitConfig(history_policy="full"), frame)
    index = dict(zip(zip(catalog["item"], catalog["domain"], strict=True), catalog["index"],
                     strict=True))
    last = (frame.sort("user", "timestamp").group_by("user", maintain_order=True).last()
            .select("user", "item", "domain"))
    expected = {u: (index[(i, d)], d) for u, i, d in last.iter_rows()}
    for seqs in (strict, full):
        overlap = seqs.filter(pl.col("kind") == "overlap")
        for user, item, domain in overlap.select("user", "target_item", "target_domain").iter_rows():
            assert expected[user] == (item, domain)
    assert history_violations(strict, strict=True) == {
        "empty_history": 0, "no_source_item": 0, "source_is_target": 0,
        "foreign_domain_history": 0}
    # Full keeps the mixed history: some held-out user then has target-domain items.
    assert history_violations(full, strict=True)["foreign_domain_history"] > 0
    # Training anchors keep the full mixed sequence without the target under both policies.
    train = strict.filter((pl.col("kind") == "overlap") & (pl.col("split") == "train"))
    n_events = dict(frame.group_by("user").len().iter_rows())
    assert all(len(items) == n_events[u] - 1 for u, items in train.select("user", "items").rows())


def test_split_is_deterministic_by_seed():
    _, a = split(SplitConfig(seed=1))
    _, b = split(SplitConfig(seed=1))
    _, c = split(SplitConfig(seed=2))
    assert a.equals(b)
    held = {s: set(x.filter(pl.col("split") == "test")["user"]) for s, x in (("a", a), ("c", c))}
    assert held["a"] != held["c"]


def test_too_few_overlapping_users_is_an_error():
    frame = interactions(n_users=6)  # two overlapping users: both go to training at 0.8
    with pytest.raises(UnusableDataError, match="only 2 overlapping users"):
        split(frame=frame)


def test_split_config_is_validated():
    with pytest.raises(ValueError, match="train_fraction"):
        SplitConfig(train_fraction=1.0)
    with pytest.raises(ValueError, match="history_policy"):
        SplitConfig(history_policy="mixed")

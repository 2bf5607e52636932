"""Time window and iterative k-core against a naive reference."""

import numpy as np
import polars as pl
import pytest

from models.data.errors import UnusableDataError
from models.data.filtering import (
    apply_window,
    dense_ids,
    filter_items,
    filter_pair,
    kcore,
    kcore_violations,
    overlapping_users,
)


def random_interactions(seed: int, n: int = 3000) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    users = rng.zipf(1.6, n) % 400
    items = rng.zipf(1.4, n) % 300
    domain = np.where(rng.random(n) < 0.4, "A", "B")
    return pl.DataFrame({
        "user": [f"U{u}" for u in users], "item": [f"I{i}" for i in items],
        "timestamp": rng.integers(1_500_000_000, 1_600_000_000, n), "rating": np.ones(n),
        "domain": domain,
    })


def naive_kcore(frame: pl.DataFrame, k: int) -> pl.DataFrame:
    """Remove users, then items, below k, one kind at a time, until nothing changes."""
    rows = frame.to_dicts()
    while True:
        before = len(rows)
        users: dict = {}
        for r in rows:
            users[r["user"]] = users.get(r["user"], 0) + 1
        rows = [r for r in rows if users[r["user"]] >= k]
        items: dict = {}
        for r in rows:
            key = (r["item"], r["domain"])
            items[key] = items.get(key, 0) + 1
        rows = [r for r in rows if items[(r["item"], r["domain"])] >= k]
        if len(rows) == before:
            return pl.DataFrame(rows, schema=frame.schema)


@pytest.mark.parametrize("seed", range(5))
@pytest.mark.parametrize("k", [2, 3, 5])
def test_kcore_equals_the_naive_reference_and_is_a_fixed_point(seed, k):
    frame = random_interactions(seed)
    core, rounds = kcore(frame, k)
    assert core.equals(naive_kcore(frame, k))
    assert rounds >= 1
    assert kcore_violations(core, k)["users_below_k"] == 0
    assert kcore_violations(core, k)["items_below_k"] == 0
    again, _ = kcore(core, k)
    assert again.equals(core)


def test_item_key_includes_the_domain():
    # The same item id in A and B is two items: each has 1 interaction, so a 2-core is empty.
    frame = pl.DataFrame({"user": ["U1", "U1"], "item": ["X", "X"], "timestamp": [1, 2],
                          "rating": [1.0, 1.0], "domain": ["A", "B"]})
    assert kcore(frame, 2)[0].height == 0
    assert kcore_violations(frame, 2) == {"users_below_k": 0, "items_below_k": 2,
                                          "min_user_degree": 2, "min_item_degree": 1}


def test_window_is_relative_to_the_newest_timestamp():
    day = 86_400
    frame = pl.DataFrame({"user": ["a", "b", "c"], "item": ["i"] * 3,
                          "timestamp": [10 * day, 40 * day, 41 * day], "rating": [1.0] * 3,
                          "domain": ["A", "A", "B"]})
    assert apply_window(frame, 30)["user"].to_list() == ["b", "c"]
    assert apply_window(frame, None).height == 3


def test_filter_pair_reports_and_refuses_a_pair_without_overlap():
    frame = random_interactions(0)
    kept, stats = filter_pair(frame, None, 3)
    assert stats["after_kcore"] == kept.height and stats["overlapping_users"] > 0
    assert stats["overlapping_users"] == overlapping_users(kept)
    only_a = frame.with_columns(domain=pl.lit("A"))
    with pytest.raises(UnusableDataError, match="no overlapping users left after filtering"):
        filter_pair(only_a, None, 3)


def test_filter_items_keeps_items_with_interactions():
    items = pl.DataFrame({"item": ["I1", "I2", "I1"], "domain": ["A", "A", "B"],
                          "title": ["a", "b", "c"]})
    inter = pl.DataFrame({"item": ["I1", "I1"], "domain": ["B", "B"]})
    assert filter_items(items, inter)["title"].to_list() == ["c"]


def test_dense_ids_stay_exact_when_the_first_hash_collides(monkeypatch):
    """Every key hashed to one value: the check hash sees it and the strings are encoded."""
    import models.data.filtering as filtering

    real = filtering._hash
    monkeypatch.setattr(filtering, "_hash", lambda keys, seed: (
        pl.Series(np.zeros(len(keys), dtype=np.uint64)) if seed == 0 else real(keys, seed)))
    keys = pl.Series("user", ["b", "a", "b", "c", "a"])
    assert dense_ids(keys).tolist() == [0, 1, 0, 2, 1]


def test_dense_ids_refuse_null_keys():
    with pytest.raises(ValueError, match="'user' has 1 nulls"):
        dense_ids(pl.Series("user", ["a", None]))


def test_dense_ids_number_distinct_strings_exactly():
    frame = random_interactions(3, n=500)
    for column in ("user", "item"):
        ids = dense_ids(frame[column])
        pairs = set(zip(frame[column].to_list(), ids.tolist(), strict=True))
        assert len(pairs) == frame[column].n_unique() == len(set(ids.tolist()))
        assert set(ids.tolist()) == set(range(frame[column].n_unique()))

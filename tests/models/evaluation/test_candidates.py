"""Candidate lists: ground truth once and first, distinct negatives, one list per seed and protocol."""

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from models.evaluation.candidates import (
    CANDIDATE_SCHEMA,
    _user_rng,
    describe_pool,
    protocol_lists,
    sample_all_seeds,
    sample_candidates,
    sample_negatives,
    stored_protocols,
)

N_ITEMS = {"A": 1500, "B": 3000}


def held_out(n: int = 40, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n):
        tgt = "A" if u % 3 == 0 else "B"
        rows.append({"user": f"u{u:03d}", "split": "test" if u % 2 else "valid",
                     "target_domain": tgt, "target_item": int(rng.integers(N_ITEMS[tgt]))})
    return pl.DataFrame(rows)


@pytest.mark.parametrize("pool", ["all", "target"])
def test_truth_first_never_among_negatives_and_no_duplicates(pool):
    table = sample_candidates(held_out(), N_ITEMS, 999, pool, seed=0)
    assert table.schema == pl.Schema(CANDIDATE_SCHEMA)
    for r in table.iter_rows(named=True):
        pairs = list(zip(r["cand_items"], r["cand_domains"], strict=True))
        assert pairs[0] == (r["target_item"], r["target_domain"])
        assert len(pairs) == 1000
        assert len(set(pairs)) == 1000  # no duplicates, the truth appears exactly once
        assert pairs.count((r["target_item"], r["target_domain"])) == 1
        n_tgt = sum(d == r["target_domain"] for _, d in pairs) - 1
        assert r["n_target_negatives"] == n_tgt
        if pool == "target":
            assert n_tgt == 999


def test_all_domains_pool_draws_from_both_in_proportion():
    table = sample_candidates(held_out(60), N_ITEMS, 999, "all", seed=1)
    share_b = np.mean([np.mean(np.array(r["cand_domains"][1:]) == "B")
                       for r in table.iter_rows(named=True)])
    assert share_b == pytest.approx(3000 / 4500, abs=0.01)


def test_same_seed_same_lists_other_seed_other_lists():
    a = sample_candidates(held_out(), N_ITEMS, 999, "all", seed=7)
    b = sample_candidates(held_out(), N_ITEMS, 999, "all", seed=7)
    c = sample_candidates(held_out(), N_ITEMS, 999, "all", seed=8)
    assert a.equals(b)
    assert not a["cand_items"].equals(c["cand_items"])


def test_a_users_list_does_not_depend_on_the_other_users():
    full = sample_candidates(held_out(40), N_ITEMS, 999, "all", seed=3)
    alone = sample_candidates(held_out(40).filter(pl.col("user") == "u017"), N_ITEMS, 999, "all", 3)
    assert full.filter(pl.col("user") == "u017").equals(alone)


def test_small_catalog_uses_every_other_item():
    rows = held_out(6).with_columns(target_item=pl.col("target_item") % 4)
    table = sample_candidates(rows, {"A": 5, "B": 4}, 999, "all", seed=0)
    for r in table.iter_rows(named=True):
        assert len(r["cand_items"]) == 9  # every item of both domains, the truth once
        assert len(set(zip(r["cand_items"], r["cand_domains"], strict=True))) == 9


def test_full_pool_keeps_only_the_truth():
    table = sample_candidates(held_out(6), N_ITEMS, 999, "full", seed=0)
    assert table["cand_items"].list.len().to_list() == [1] * 6


def test_every_protocol_is_stored_per_seed_primary_first():
    table = sample_all_seeds(held_out(12), N_ITEMS, 999, ("all", "target"), (0, 1))
    assert table.schema == pl.Schema(CANDIDATE_SCHEMA)
    assert stored_protocols(table) == ["all", "target"]
    counts = table.group_by("seed", "protocol").len()
    assert sorted(counts.iter_rows()) == [(0, "all", 12), (0, "target", 12), (1, "all", 12),
                                          (1, "target", 12)]
    per_user = table.group_by("seed", "split", "user").agg(
        pl.col("protocol").sort().alias("protocols"), pl.col("target_item").n_unique().alias("t"))
    assert (per_user["protocols"].list.join(",") == "all,target").all() and (per_user["t"] == 1).all()
    target = protocol_lists(table, "target")
    assert set(target["protocol"]) == {"target"} and (target["n_target_negatives"] == 999).all()
    # "all" keeps ~1500/4499 of its 999 in the domain of A, ~3000/4499 in B: fewer than 999
    assert (protocol_lists(table)["n_target_negatives"] < 999).all()  # None: the primary, "all"
    with pytest.raises(ValueError, match="no stored candidates for protocol 'full'"):
        protocol_lists(table, "full")


def test_a_protocols_lists_are_the_ones_it_has_alone():
    """Each list is a function of (seed, split, user, protocol): other protocols change none."""
    rows = held_out(20)
    both = sample_all_seeds(rows, N_ITEMS, 999, ("target", "all"), (4,))
    for pool in ("all", "target"):
        alone = sample_candidates(rows, N_ITEMS, 999, pool, seed=4)
        assert both.filter(pl.col("protocol") == pool).equals(alone)
    assert stored_protocols(both) == ["target", "all"]  # stored in the configured order
    assert "999 negatives sampled from the target domain" in describe_pool("target", 999)


def test_stacked_seeds_and_bad_targets():
    table = sample_all_seeds(held_out(10), N_ITEMS, 50, "target", (0, 1, 2))
    assert table.group_by("seed").len().sort("seed")["len"].to_list() == [10, 10, 10]
    bad = held_out(2).with_columns(target_item=pl.lit(99999))
    with pytest.raises(ValueError, match="not an item of domain"):
        sample_candidates(bad, N_ITEMS, 50, "all", 0)
    with pytest.raises(ValueError, match="negative pool"):
        sample_candidates(held_out(2), N_ITEMS, 50, "everything", 0)


@settings(max_examples=40, deadline=None)
@given(n_a=st.integers(1, 60), n_b=st.integers(1, 60), n_neg=st.integers(1, 80),
       seed=st.integers(0, 10_000), pool=st.sampled_from(["all", "target"]))
def test_property_distinct_and_truth_once(n_a, n_b, n_neg, seed, pool):
    sizes = {"A": n_a, "B": n_b}
    rows = pl.DataFrame([{"user": "x", "split": "test", "target_domain": "B",
                          "target_item": seed % n_b}])
    r = sample_candidates(rows, sizes, n_neg, pool, seed).row(0, named=True)
    pairs = list(zip(r["cand_items"], r["cand_domains"], strict=True))
    assert pairs[0] == (seed % n_b, "B")
    assert len(set(pairs)) == len(pairs)
    universe = (n_a + n_b) if pool == "all" else n_b
    assert len(pairs) == 1 + min(n_neg, universe - 1)
    assert all(0 <= i < sizes[d] for i, d in pairs)


def test_stored_lists_draw_as_before_the_shared_sampler():
    """Pins eval_candidates: one ``rng.choice`` per user, sorted and shifted past the truth, as
    the pool sampler drew before LGCD's validation shared it."""
    def before(rng, universe, truth, n):
        if universe - 1 <= n:
            return np.delete(np.arange(universe), truth)
        picked = np.sort(rng.choice(universe - 1, size=n, replace=False))
        return picked + (picked >= truth)

    for universe, truth, n in ((4500, 0, 999), (4500, 4499, 999), (1500, 700, 999), (30, 7, 999)):
        got = np.sort(sample_negatives(np.random.default_rng([1, 2, 3]), universe, truth, n))
        np.testing.assert_array_equal(got, before(np.random.default_rng([1, 2, 3]), universe,
                                                  truth, n))
    table = sample_candidates(held_out(), N_ITEMS, 999, "target", seed=4)
    for r in table.iter_rows(named=True):
        rng = _user_rng(4, r["split"], r["user"])
        offset = 0 if r["target_domain"] == "A" else N_ITEMS["A"]
        truth = r["cand_items"][0]
        expected = before(rng, N_ITEMS[r["target_domain"]], truth, 999) + offset
        expected = np.where(expected >= N_ITEMS["A"], expected - N_ITEMS["A"], expected)
        assert r["cand_items"][1:] == expected.tolist()

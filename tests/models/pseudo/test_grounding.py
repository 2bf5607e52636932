"""Grounding guesses to real items (eqs. 5-6): nK items a user, fallbacks, one run serves every nK."""

import numpy as np
import polars as pl
import pytest
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.pseudo.grounding import ground, per_title_ids, retrieval_requests, retrieve
from models.pseudo.requests import GroundingConfig

E, N = 8, 30  # text width, items a domain


@pytest.fixture(scope="module")
def world():
    rng = np.random.default_rng(0)
    item_emb = {d: rng.normal(size=(N, E)).astype(np.float32) for d in ("A", "B")}
    torch.manual_seed(0)
    encoders = {d: DomainEncoder(EncoderConfig(n_items=N, text_dim=E, d=8, n_heads=2, n_layers=1, max_len=10),
                                 torch.from_numpy(item_emb[d])).eval() for d in ("A", "B")}
    sequences = pl.DataFrame({
        "user": ["u1", "u2", "u3"], "split": ["train"] * 3, "kind": ["single"] * 3,
        "source_domain": ["A", "A", "B"], "items": [[0, 1, 2], [3, 4], [5, 6, 7]]})
    generations = pl.DataFrame({
        "id": ["A>B:u1", "A>B:u2", "B>A:u3"], "user": ["u1", "u2", "u3"],
        "source_domain": ["A", "A", "B"], "target_domain": ["B", "B", "A"]})
    titles = {"A>B:u1": rng.normal(size=(3, E)).astype(np.float32),
              "B>A:u3": rng.normal(size=(2, E)).astype(np.float32)}  # u2: no usable title
    return item_emb, encoders, sequences, generations, titles


@pytest.mark.parametrize("mode", ["sequence", "per_title"])
def test_each_user_gets_nk_distinct_items_inserted_in_order_and_a_fallback_is_flagged(world, mode):
    item_emb, encoders, sequences, generations, titles = world
    table, stats = ground(generations, sequences, titles, item_emb, item_emb, encoders,
                          GroundingConfig(mode=mode), n_k=5)
    assert table["user"].to_list() == ["u3", "u1", "u2"]  # by target domain A, B; then by user
    for row in table.iter_rows(named=True):
        assert len(set(row["pseudo_items"])) == 5
        source = [i for i, p in zip(row["items"], row["is_pseudo"], strict=True) if not p]
        inserted = [i for i, p in zip(row["items"], row["is_pseudo"], strict=True) if p]
        own = sequences.filter(pl.col("user") == row["user"])["items"][0].to_list()
        assert source == own and inserted == row["pseudo_items"]
    assert table.filter(pl.col("fallback"))["user"].to_list() == ["u2"]
    assert (stats.users, stats.fallback_users) == (3, 1)


@pytest.mark.parametrize("mode", ["sequence", "per_title"])
def test_a_deeper_retrieval_starts_with_the_shallower_one(world, mode):
    """Why one grounding run serves every model: each keeps its own nK best-ranked items."""
    item_emb, encoders, sequences, generations, titles = world
    cfg = GroundingConfig(mode=mode)
    deep, _ = ground(generations, sequences, titles, item_emb, item_emb, encoders, cfg, n_k=12)
    shallow, _ = ground(generations, sequences, titles, item_emb, item_emb, encoders, cfg, n_k=4)
    assert [p[:4] for p in deep["pseudo_items"].to_list()] == shallow["pseudo_items"].to_list()


def test_per_title_takes_each_titles_nearest_item_first(world):
    item_emb = world[0]["B"]
    guesses = item_emb[[7, 3]] + 1e-3  # two titles next to items 7 and 3
    assert per_title_ids([guesses], item_emb, GroundingConfig(mode="per_title"), n_k=4)[0][:2] == [7, 3]


def test_an_exact_index_reports_no_recall_and_ranks_by_score(world):
    pool = world[0]["A"] / np.linalg.norm(world[0]["A"], axis=1, keepdims=True)
    scores, ids, recall = retrieve(pool[:3], pool, GroundingConfig(), n_k=5)
    assert recall is None and ids[:, 0].tolist() == [0, 1, 2]
    assert np.all(np.diff(scores, axis=1) <= 1e-6)


def test_retrieval_requests_cover_every_single_domain_user_towards_the_other_domain(world):
    requests = retrieval_requests(world[2])
    assert requests.select("id", "target_domain").rows() == [("A>B:u1", "B"), ("A>B:u2", "B"),
                                                             ("B>A:u3", "A")]
    assert requests["titles"].to_list() == [[], [], []]

"""One ranking path for every model: stored candidates, other-domain masking, full ranking,
every protocol from the same scores."""

import numpy as np
import polars as pl
import pytest
import torch

from models.evaluation.candidates import sample_all_seeds
from models.evaluation.ranking import (
    RANK_SCHEMA,
    EvalUser,
    eval_users,
    metric_rows,
    metrics_by_target_popularity,
    rank_users,
    validation_ndcg,
)
from models.metrics import ranking_metrics

N_ITEMS = {"A": 40, "B": 60}


def sequences(n: int = 12) -> pl.DataFrame:
    rows = [{"user": "t0", "split": "train", "kind": "single", "items": [1, 2], "domains": ["A", "A"],
             "target_item": None, "target_domain": None, "source_domain": "A"}]
    for u in range(n):
        tgt = "B" if u % 2 else "A"
        src = "A" if tgt == "B" else "B"
        rows.append({"user": f"u{u:02d}", "split": "test" if u < n // 2 else "valid",
                     "kind": "overlap", "items": [u % 7, (u + 1) % 7], "domains": [src, src],
                     "target_item": (3 * u) % N_ITEMS[tgt], "target_domain": tgt,
                     "source_domain": src})
    return pl.DataFrame(rows, schema_overrides={"target_item": pl.Int32})


class Oracle:
    """Scores the ground truth highest; everything else by a fixed per-item value."""

    def __init__(self, users, invert=False):
        self.truth = {u.user: u.target_item for u in users}
        self.invert = invert

    def score(self, users, target_domain, candidates):
        n = N_ITEMS[target_domain]
        table = torch.arange(n, dtype=torch.float32)[None].repeat(len(users), 1)  # (B, N)
        for row, u in enumerate(users):
            table[row, self.truth[u.user]] = -1.0 if self.invert else 1e6
        return table if candidates is None else table.gather(1, candidates)


class Constant:
    def score(self, users, target_domain, candidates):
        shape = (len(users), N_ITEMS[target_domain]) if candidates is None else candidates.shape
        return torch.zeros(shape)


class Counting(Oracle):
    """An oracle that records the candidate tensors it was asked to score."""

    def __init__(self, users, invert=False):
        super().__init__(users, invert)
        self.calls = []

    def score(self, users, target_domain, candidates):
        self.calls.append(None if candidates is None else candidates.clone())
        return super().score(users, target_domain, candidates)


@pytest.fixture
def setup():
    seqs = sequences()
    users = eval_users(seqs)
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 30, "all", (0, 1))
    return seqs, users, cands


def test_eval_users_are_held_out_rows_in_order(setup):
    _, users, _ = setup
    assert [u.split for u in users] == ["test"] * 6 + ["valid"] * 6
    assert all(isinstance(u, EvalUser) and u.source_domain != u.target_domain for u in users)


def test_oracle_ranks_first_and_inverted_oracle_last(setup):
    _, users, cands = setup
    best = rank_users(Oracle(users), users, cands, 0, "oracle")
    assert best["rank"].to_list() == [0] * len(users)
    worst = rank_users(Oracle(users, invert=True), users, cands, 0, "worst")
    expected = {(r["split"], r["user"]): r["n_target_negatives"]
                for r in cands.filter(pl.col("seed") == 0).iter_rows(named=True)}
    for r in worst.iter_rows(named=True):
        # other-domain negatives never outrank the truth: the rank counts target items only
        assert r["rank"] == expected[(r["split"], r["user"])] == r["n_candidates"] - 1


def test_constant_scores_rank_last(setup):
    _, users, cands = setup
    ranks = rank_users(Constant(), users, cands, 1, "constant")
    assert (ranks["rank"] == ranks["n_candidates"] - 1).all()


def test_identical_candidate_lists_for_every_model(setup):
    _, users, cands = setup
    a = rank_users(Oracle(users), users, cands, 0, "a")
    b = rank_users(Constant(), users, cands, 0, "b")
    assert a.select("split", "user", "n_candidates").equals(b.select("split", "user", "n_candidates"))


def test_full_ranking_uses_the_whole_target_catalog(setup):
    seqs, users, _ = setup
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 30, "full", (0,))
    ranks = rank_users(Oracle(users, invert=True), users, cands, 0, "full")
    assert set(ranks["protocol"]) == {"full"}
    for r in ranks.iter_rows(named=True):
        assert r["n_candidates"] == N_ITEMS[r["target_domain"]]
        assert r["rank"] == r["n_candidates"] - 1


@pytest.fixture
def both():
    """Lists of the paper's protocol ("all", primary) and LLMCDSR's ("target"), two seeds."""
    seqs = sequences()
    users = eval_users(seqs)
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 30,
                             ("all", "target"), (0, 1))
    return users, cands


def test_every_protocol_is_ranked_from_one_scoring_pass(both):
    users, cands = both
    scorer = Counting(users, invert=True)
    ranks = rank_users(scorer, users, cands, 0, "worst", batch_size=4)
    assert ranks.schema == pl.Schema(RANK_SCHEMA)
    assert ranks["protocol"].unique(maintain_order=True).to_list() == ["all", "target"]
    # one call per batch (3 of A users, 3 of B users at 4 per batch: 2 + 2), not per protocol
    assert len(scorer.calls) == 4
    stored = {(r["protocol"], r["split"], r["user"]): r["n_target_negatives"]
              for r in cands.filter(pl.col("seed") == 0).iter_rows(named=True)}
    for r in ranks.iter_rows(named=True):
        # the inverted oracle ranks the truth last among each protocol's own target items
        assert r["rank"] == r["n_candidates"] - 1 == stored[(r["protocol"], r["split"], r["user"])]
    sizes = ranks.pivot("protocol", index=["split", "user"], values="n_candidates")
    # "target" keeps all 30 negatives; "all" keeps only the target-domain part of its 30
    assert (sizes["target"] == 31).all() and (sizes["all"] <= sizes["target"]).all()
    assert (sizes["all"] < sizes["target"]).any()


def test_ranks_per_protocol_equal_ranking_that_protocol_alone(both):
    users, cands = both

    class Hashed:
        """Fixed pseudo-random item scores: ranks depend on the lists, not on batching."""

        def score(self, users, target_domain, candidates):
            table = torch.sin(torch.arange(N_ITEMS[target_domain], dtype=torch.float32) * 7.3)
            table = table[None].repeat(len(users), 1)  # (B, N)
            return table if candidates is None else table.gather(1, candidates)

    together = rank_users(Hashed(), users, cands, 1, "h")
    for protocol in ("all", "target"):
        alone = rank_users(Hashed(), users, cands.filter(pl.col("protocol") == protocol), 1, "h")
        assert together.filter(pl.col("protocol") == protocol).equals(alone)
    only_target = rank_users(Hashed(), users, cands, 1, "h", protocols=["target"])
    assert set(only_target["protocol"]) == {"target"}


def test_metrics_keep_protocols_apart(both):
    users, cands = both
    rows = metric_rows(rank_users(Oracle(users, invert=True), users, cands, 0, "worst"))
    assert set(rows["protocol"]) == {"all", "target"}
    assert rows.group_by("protocol", "split", "target_domain").len()["len"].max() == 1
    target = rows.filter(pl.col("protocol") == "target")
    assert (target["candidates"] == 31.0).all() and (target["hr@20"] == 0.0).all()
    assert (rows.filter(pl.col("protocol") == "all")["candidates"] < 31.0).all()


def test_validation_reads_the_primary_protocol_only():
    seqs = sequences()
    users = eval_users(seqs)
    # 8 negatives: the truth, ranked last, is inside the top 10 under both protocols, at
    # rank 8 on "target" lists and at the (smaller) target-domain count on "all" lists
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 8,
                             ("all", "target"), (0,))
    worst = Oracle(users, invert=True)
    ranks = rank_users(worst, [u for u in users if u.split == "valid"], cands, 0, "w")
    expected = {p: ranking_metrics(ranks.filter(pl.col("protocol") == p)["rank"].to_numpy(),
                                   (10,))["ndcg@10"] for p in ("all", "target")}
    assert expected["all"] > expected["target"] > 0.0
    assert validation_ndcg(worst, users, cands, 0) == expected["all"]  # the primary: first stored
    assert validation_ndcg(worst, users, cands, 0, protocol="target") == expected["target"]
    flipped = cands.sort(pl.col("protocol") != "target", maintain_order=True)
    assert validation_ndcg(worst, users, flipped, 0) == expected["target"]


def test_missing_candidates_fail_with_a_hint(setup):
    _, users, cands = setup
    with pytest.raises(ValueError, match="re-materialize eval_candidates"):
        rank_users(Constant(), users, cands, seed=5, model="x")
    with pytest.raises(ValueError, match="no stored 'target' candidates"):
        rank_users(Constant(), users, cands, seed=0, model="x", protocols=["target"])


def test_metric_rows_per_domain_and_pooled(setup):
    _, users, cands = setup
    ranks = rank_users(Oracle(users), users, cands, 0, "oracle")
    rows = metric_rows(ranks)
    assert set(rows["target_domain"]) == {"A", "B", "all"}
    assert (rows["hr@1"] == 1.0).all() and (rows["ndcg@20"] == 1.0).all()
    assert validation_ndcg(Oracle(users), users, cands, 0) == 1.0


def _popularity_case() -> tuple[pl.DataFrame, pl.DataFrame]:
    """Training counts in domain A: item 0 x12, item 1 x2, item 2 x60; item 3 never."""
    train = [[0] * 12 + [1] * 2, [2] * 60]
    rows = [{"user": f"t{i}", "split": "train", "kind": "single", "items": s,
             "domains": ["A"] * len(s), "target_item": None, "target_domain": None}
            for i, s in enumerate(train)]
    held = [("u1", 1), ("u2", 0), ("u3", 2), ("u4", 3)]
    rows += [{"user": u, "split": "test", "kind": "overlap", "items": [7], "domains": ["B"],
              "target_item": t, "target_domain": "A"} for u, t in held]
    sequences = pl.DataFrame(rows, schema_overrides={"target_item": pl.Int32})
    ranks = pl.DataFrame({"model": "m", "seed": 0, "protocol": "all", "split": "test",
                          "user": ["u1", "u2", "u3", "u4"], "target_domain": "A",
                          "rank": [0, 5, 20, 1], "n_candidates": 100})
    return ranks, sequences


def test_metrics_by_target_popularity_buckets_users_by_training_count():
    ranks, sequences = _popularity_case()
    table = metrics_by_target_popularity(ranks, sequences, edges=(10, 50))
    got = {r["bucket"]: r for r in table.iter_rows(named=True)}
    assert set(got) == {"<10", "10-49", ">=50"}
    # u1 (2 interactions) and u4 (never seen) are rare: ranks 0 and 1
    assert got["<10"]["rows"] == 2 and got["<10"]["hr@10"] == 1.0
    assert got["<10"]["ndcg@10"] == pytest.approx((1.0 + 1 / np.log2(3)) / 2)
    assert got["10-49"]["ndcg@10"] == pytest.approx(1 / np.log2(7))
    assert got[">=50"]["hr@10"] == 0.0 and got[">=50"]["median_count"] == 60


def test_metrics_by_target_popularity_refuses_users_it_cannot_place():
    ranks, sequences = _popularity_case()
    stranger = ranks.head(1).with_columns(pl.lit("nobody").alias("user"))
    with pytest.raises(ValueError, match="1 ranked users"):
        metrics_by_target_popularity(pl.concat([ranks, stranger]), sequences)
    with pytest.raises(ValueError, match="edges"):
        metrics_by_target_popularity(ranks, sequences, edges=(50, 10))

"""One ranking path for every model: stored candidates, other-domain masking, full ranking."""

import polars as pl
import pytest
import torch

from models.candidates import sample_all_seeds
from models.evaluation import EvalUser, eval_users, metric_rows, rank_users, validation_ndcg

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
    _, users, cands = setup
    ranks = rank_users(Oracle(users, invert=True), users, cands, 0, "full", full=True)
    for r in ranks.iter_rows(named=True):
        assert r["n_candidates"] == N_ITEMS[r["target_domain"]]
        assert r["rank"] == r["n_candidates"] - 1


def test_missing_candidates_fail_with_a_hint(setup):
    _, users, cands = setup
    with pytest.raises(ValueError, match="re-materialize eval_candidates"):
        rank_users(Constant(), users, cands, seed=5, model="x")


def test_metric_rows_per_domain_and_pooled(setup):
    _, users, cands = setup
    ranks = rank_users(Oracle(users), users, cands, 0, "oracle")
    rows = metric_rows(ranks)
    assert set(rows["target_domain"]) == {"A", "B", "all"}
    assert (rows["hr@1"] == 1.0).all() and (rows["ndcg@20"] == 1.0).all()
    assert validation_ndcg(Oracle(users), users, cands, 0) == 1.0

"""Ranking metrics against hand-computed cases."""

import math

import numpy as np
import pytest
import torch

from models.metrics import (
    candidate_ranks,
    hit_rate,
    ndcg,
    ndcg_per_user,
    ranking_metrics,
    target_ranks,
)


def test_rank_zero_is_a_hit_at_every_cutoff_with_full_gain():
    m = ranking_metrics(np.array([0]))
    assert m == {"hr@1": 1.0, "ndcg@1": 1.0, "hr@5": 1.0, "ndcg@5": 1.0, "hr@10": 1.0,
                 "ndcg@10": 1.0, "hr@20": 1.0, "ndcg@20": 1.0}


def test_rank_nine_is_inside_ten_but_not_five():
    m = ranking_metrics(np.array([9]))
    assert m["hr@5"] == 0.0 and m["ndcg@5"] == 0.0
    assert m["hr@10"] == 1.0
    assert m["ndcg@10"] == pytest.approx(1 / math.log2(11))  # 0.289065
    assert m["ndcg@10"] == pytest.approx(0.2890648263)


def test_rank_beyond_ten_counts_only_at_twenty():
    m = ranking_metrics(np.array([10]))
    assert m["hr@10"] == 0.0 and m["ndcg@10"] == 0.0
    assert m["hr@20"] == 1.0 and m["ndcg@20"] == pytest.approx(1 / math.log2(12))
    assert ranking_metrics(np.array([20]))["hr@20"] == 0.0


def test_averages_over_users():
    m = ranking_metrics(np.array([0, 9, 10, 25]))
    assert m["hr@10"] == 0.5
    assert m["ndcg@10"] == pytest.approx((1 + 1 / math.log2(11)) / 4)
    assert m["ndcg@5"] == pytest.approx(1 / 4)
    assert m["hr@1"] == 0.25


def test_rank_two_gain_is_one_half():
    assert ndcg_per_user(np.array([2]), 5)[0] == pytest.approx(0.5)  # 1/log2(4)


def test_empty_ranks_give_zero():
    assert ranking_metrics(np.array([]))["hr@10"] == 0.0


def test_torch_and_numpy_metrics_agree():
    ranks = np.array([0, 3, 9, 10, 40, 1])
    for k in (1, 5, 10, 20):
        m = ranking_metrics(ranks, (k,))
        assert m[f"hr@{k}"] == pytest.approx(hit_rate(torch.from_numpy(ranks), k))
        assert m[f"ndcg@{k}"] == pytest.approx(ndcg(torch.from_numpy(ranks), k))


def test_candidate_ranks_counts_ties_against_truth_and_ignores_padding():
    scores = torch.tensor([[5.0, 1.0, 2.0, 9.0, 9.0],   # one higher + one padded higher
                           [1.0, 1.0, 0.0, 0.0, 0.0],   # tie with truth counts against it
                           [0.0, 0.0, 0.0, 0.0, 0.0]])  # all equal: last
    valid = torch.tensor([[True, True, True, True, False],
                          [True, True, True, True, True],
                          [True, True, True, True, True]])
    assert candidate_ranks(scores, valid).tolist() == [1, 1, 4]


def test_nan_truth_ranks_last():
    scores = torch.tensor([[float("nan"), 1.0, 2.0]])
    assert candidate_ranks(scores).tolist() == [2]
    assert target_ranks(scores, torch.tensor([0])).tolist() == [2]


def test_target_ranks_full_catalog():
    scores = torch.tensor([[0.1, 0.9, 0.5, 0.3]])
    assert target_ranks(scores, torch.tensor([2])).tolist() == [1]
    assert target_ranks(scores, torch.tensor([1])).tolist() == [0]
    assert target_ranks(scores, torch.tensor([0])).tolist() == [3]

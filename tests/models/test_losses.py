"""Sampled softmax with logQ correction (models/losses.py)."""

import pytest
import torch
import torch.nn.functional as F

from models.losses import (
    candidate_set,
    check_negatives,
    inclusion_log_prob,
    sampled_softmax_loss,
    target_frequencies,
)


def test_sampled_softmax_equals_full_softmax_when_the_negatives_cover_the_catalog():
    g = torch.Generator().manual_seed(0)
    h, table = torch.randn(7, 5, generator=g), torch.randn(30, 5, generator=g)
    targets = torch.tensor([3, 3, 0, 29, 11, 7, 3])
    freq = target_frequencies(targets.tolist(), 30)
    cands = candidate_set(targets, 30, 30, g)
    log_q = inclusion_log_prob(cands, freq, len(targets), 30)
    assert torch.equal(cands, torch.arange(30)) and torch.equal(log_q, torch.zeros(30))
    full = F.cross_entropy(h @ table.T, targets)
    torch.testing.assert_close(sampled_softmax_loss(h, targets, cands, table[cands], log_q), full)
    bias = torch.randn(30, generator=g)
    torch.testing.assert_close(sampled_softmax_loss(h, targets, cands, table, log_q, bias),
                               F.cross_entropy(h @ table.T + bias, targets))


def test_candidates_hold_every_positive_once_and_popular_items_get_a_larger_correction():
    g = torch.Generator().manual_seed(1)
    targets = torch.tensor([5, 5, 5, 5, 9, 2])
    cands = candidate_set(targets, 1000, 50, g)
    assert torch.equal(cands, torch.unique(cands)) and set(targets.tolist()) <= set(cands.tolist())
    freq = target_frequencies([5] * 90 + [9] * 10, 1000)
    log_q = inclusion_log_prob(cands, freq, len(targets), 50)
    q = dict(zip(cands.tolist(), log_q.tolist(), strict=True))
    assert q[5] > q[9] > q[2] and max(q.values()) <= 0.0  # log of a probability
    # an unseen item is in the set only through the uniform draws: 1 - (1 - 1/N)^K
    assert q[2] == pytest.approx(float(torch.log(torch.tensor(1 - (1 - 1e-3) ** 50))), rel=1e-5)


def test_more_negatives_than_items_is_a_config_error_naming_the_field():
    with pytest.raises(ValueError, match=r"encoder\.sampled_negatives=2048 .* 1000 items"):
        check_negatives(2048, 1000, "encoder.sampled_negatives")

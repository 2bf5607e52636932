"""Shared pieces of the baselines: training interactions, the joint vocabulary, scores, the fit loop."""

import polars as pl
import torch
from torch import nn

from models.evaluation.baselines.common import Interactions, JointVocab, fit_with_loop, scores_for
from models.train import LoopConfig


def test_interactions_put_overlap_targets_back(data):
    train, _, _ = data
    assert len(train.items) == 260
    assert train.items[0] == [train.items[0][0]] * 2 and train.overlap[0]
    assert train.domains[0] in (["A", "B"], ["B", "A"])


def test_interactions_are_the_training_rows_by_user_single_ones_unchanged():
    seqs = pl.DataFrame([
        {"user": "b", "split": "train", "kind": "single", "items": [4, 5], "domains": ["B", "B"],
         "target_item": None, "target_domain": None},
        {"user": "a", "split": "train", "kind": "overlap", "items": [1], "domains": ["A"],
         "target_item": 7, "target_domain": "B"},
        {"user": "c", "split": "test", "kind": "overlap", "items": [2], "domains": ["A"],
         "target_item": 3, "target_domain": "B"}],
        schema_overrides={"items": pl.List(pl.Int32), "target_item": pl.Int32,
                          "target_domain": pl.String})
    train = Interactions.from_sequences(seqs)
    assert train == Interactions([[1, 7], [4, 5]], [["A", "B"], ["B", "B"]], [True, False])


def test_joint_vocab_puts_b_items_after_a_items():
    vocab = JointVocab({"A": 3, "B": 5})
    assert vocab.size == 8
    assert vocab.ids([0, 2, 0, 4], ["A", "A", "B", "B"]) == [0, 2, 3, 7]
    assert vocab.domain_slice("A") == slice(0, 3) and vocab.domain_slice("B") == slice(3, 8)


def test_scores_for_all_items_and_for_candidates_agree():
    table = torch.arange(12.0).reshape(4, 3)  # (N=4, d=3)
    h = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 2.0]])  # (B=2, d)
    full = scores_for(table, h, None)  # (2, 4)
    assert full.tolist() == [[0.0, 3.0, 6.0, 9.0], [4.0, 10.0, 16.0, 22.0]]
    cands = torch.tensor([[3, 0], [1, 1]])  # (B, C=2)
    torch.testing.assert_close(scores_for(table, h, cands), full.gather(1, cands),
                               rtol=0, atol=0)


def test_fit_with_loop_reports_every_validation_and_keeps_the_best():
    torch.manual_seed(0)
    model = nn.Linear(2, 1)
    x, y = torch.randn(8, 2), torch.randn(8)
    scripted = iter([0.1, 0.3, 0.2])  # NDCG@10 per validation: the second one is best
    seen = []
    result = fit_with_loop(model, torch.optim.SGD(model.parameters(), lr=0.1),
                           lambda epoch: [slice(0, 4), slice(4, 8)],
                           lambda idx: ((model(x[idx]).squeeze(1) - y[idx]) ** 2).mean(),
                           lambda: next(scripted),
                           LoopConfig(epochs=3, patience=3, precision="fp32"),
                           seed=0, steps_per_epoch=2, name="toy", on_epoch=seen.append)
    assert [h["val_ndcg@10"] for h in result.history] == [0.1, 0.3, 0.2]
    assert seen == result.history
    assert set(result.history[0]) == {"epoch", "loss", "val_ndcg@10", "seconds"}
    assert result.best_metric == 0.3 and result.best_epoch == result.history[1]["epoch"]
    assert result.steps == 6 and result.precision == "fp32"


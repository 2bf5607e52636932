import random

import polars as pl
import pytest
import torch

from models.encoders.pretraining import (
    EncoderTrainConfig,
    SequenceBatches,
    TrainingDataError,
    domain_training_sequences,
    evaluate,
    next_item_loss,
    split_users,
    train_domain_encoder,
    train_step,
)
from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.metrics import hit_rate, ndcg, target_ranks

TINY = {"d": 16, "n_heads": 2, "n_layers": 1, "max_len": 8, "dropout": 0.0, "batch_size": 32}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def walk_sequences(n_seq: int, n_items: int, seed: int = 0) -> list[list[int]]:
    """Sequences that mostly step +1 through the items: learnable from IDs alone."""
    rng = random.Random(seed)
    out = []
    for _ in range(n_seq):
        item, seq = rng.randrange(n_items), []
        for _ in range(rng.randint(3, 9)):
            seq.append(item)
            item = (item + 1) % n_items if rng.random() < 0.9 else rng.randrange(n_items)
        out.append(seq)
    return out


def sequences_table(rows: list[dict]) -> pl.DataFrame:
    defaults = {"split": "train", "kind": "single", "timestamps": None, "target_item": None,
                "target_domain": None}
    full = [{**defaults, **r, "domains": r.get("domains", [r["source_domain"]] * len(r["items"]))}
            for r in rows]
    for r in full:
        r["timestamps"] = list(range(len(r["items"])))
    return pl.DataFrame(full, schema={
        "user": pl.String, "split": pl.String, "kind": pl.String, "items": pl.List(pl.Int32),
        "domains": pl.List(pl.String), "timestamps": pl.List(pl.Int64), "target_item": pl.Int32,
        "target_domain": pl.String, "source_domain": pl.String})


def test_tiny_batch_is_overfit():
    torch.manual_seed(0)
    n_items = 12
    seqs = [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9, 10, 11]]
    model = DomainEncoder(EncoderConfig(n_items=n_items, text_dim=8, d=16, n_heads=2, n_layers=1,
                                        max_len=4, dropout=0.0), torch.randn(n_items, 8))
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    batches = SequenceBatches(seqs, max_len=4)
    batch = (batches.inputs[:, :3], batches.targets[:, :3], batches.mask[:, :3])
    first = float(next_item_loss(model, *batch).detach())
    for _ in range(150):
        loss = train_step(model, opt, batch)
    assert first > 2.0 and loss < 0.05
    prefixes = [s[:k] for s in seqs for k in range(1, 4)]
    targets = [s[k] for s in seqs for k in range(1, 4)]
    assert evaluate(model, prefixes, targets, k=1) == (1.0, 1.0)


def test_training_learns_and_early_stops_on_validation():
    seqs = walk_sequences(300, 40)
    cfg = EncoderTrainConfig(**TINY, epochs=12, patience=2, lr=5e-3)
    seen, lines = [], []
    result = train_domain_encoder(seqs, torch.randn(40, 8), cfg, "A", on_epoch=seen.append,
                                  on_progress=lines.append, progress_every_s=0.0)
    assert seen == result.history and 1 <= len(result.history) <= 12
    # step counts over the whole budget (12 epochs x 9 steps); the ETA bounds the remaining time
    assert lines[0].startswith("sequence encoder A epoch 1: step 1/108, loss ")
    assert "steps/s" in lines[0] and "ETA" in lines[0]
    hist = result.history
    assert hist[-1].loss < hist[0].loss
    best = max(hist, key=lambda e: e.ndcg10)
    assert result.best_epoch == best.epoch and best.hr10 > 0.5  # chance is 10/40
    if len(hist) < 12:  # stopped early: the last `patience` epochs did not improve
        assert all(e.ndcg10 <= best.ndcg10 for e in hist[-2:])
    assert result.n_train + result.n_valid == 300 and result.n_valid == 30
    # the returned weights are the best epoch's, not the last epoch's
    model = DomainEncoder.from_checkpoint(result.state_dict, result.config)
    _, valid = split_users(seqs, cfg, "A")
    hr, nd = evaluate(model, [s[:-1] for s in valid], [s[-1] for s in valid])
    assert (hr, nd) == pytest.approx((best.hr10, best.ndcg10), abs=1e-6)


def test_training_is_deterministic_by_seed():
    seqs = walk_sequences(60, 20)
    cfg = EncoderTrainConfig(**{**TINY, "dropout": 0.2}, epochs=2, patience=2)
    text = torch.randn(20, 8)
    a = train_domain_encoder(seqs, text, cfg, "A")
    b = train_domain_encoder(seqs, text, cfg, "A")
    for name in a.state_dict:
        torch.testing.assert_close(a.state_dict[name], b.state_dict[name], rtol=0, atol=0)
    assert [e.loss for e in a.history] == [e.loss for e in b.history]
    c = train_domain_encoder(seqs, text, EncoderTrainConfig(**{**TINY, "dropout": 0.2}, epochs=2,
                                                            patience=2, seed=1), "A")
    assert not torch.equal(a.state_dict["item_emb.weight"], c.state_dict["item_emb.weight"])


def test_every_training_users_part_of_the_domain_is_read_and_no_held_out_user():
    table = sequences_table([
        {"user": "s1", "items": [1, 2], "source_domain": "A"},
        {"user": "s2", "items": [6, 7], "source_domain": "B"},
        {"user": "o1", "items": [3, 8, 4], "domains": ["A", "B", "A"], "kind": "overlap",
         "source_domain": "B", "target_item": 5, "target_domain": "A"},
        {"user": "o2", "items": [9, 1], "domains": ["B", "A"], "kind": "overlap",
         "source_domain": "A", "target_item": 9, "target_domain": "B"},
        {"user": "v1", "items": [11, 12], "source_domain": "A", "split": "valid",
         "kind": "overlap", "target_item": 3, "target_domain": "B"},
        {"user": "t1", "items": [13, 14], "source_domain": "A", "split": "test",
         "kind": "overlap", "target_item": 4, "target_domain": "B"},
    ])
    a = domain_training_sequences(table, "A")
    # o1's own held-out item 5 (a training user) is put back; v1 and t1 never appear
    assert a.sequences == [[3, 4, 5], [1], [1, 2]] and (a.n_single, a.n_overlap) == (1, 2)
    b = domain_training_sequences(table, "B")
    assert b.sequences == [[8], [9, 9], [6, 7]] and (b.n_single, b.n_overlap) == (1, 2)


def test_a_pair_where_nearly_every_user_overlaps_trains_on_the_overlapping_users():
    """Two single-domain users used to stop pretraining ("only 2 single-domain sequences")."""
    walks = walk_sequences(200, 30, seed=4)
    rows = [{"user": f"s{u}", "items": walks[u], "source_domain": "A"} for u in range(2)]
    for u in range(2, 200):  # overlapping users: the walk in A with one B item in the middle
        w = walks[u]
        rows.append({"user": f"o{u:03d}", "items": w[:2] + [0] + w[2:-1],
                     "domains": ["A", "A", "B"] + ["A"] * (len(w) - 3), "kind": "overlap",
                     "source_domain": "B", "target_item": w[-1], "target_domain": "A"})
    rows += [{"user": f"v{u}", "items": [29, 28], "source_domain": "A", "split": "valid",
              "kind": "overlap", "target_item": 1, "target_domain": "B"} for u in range(20)]
    data = domain_training_sequences(sequences_table(rows), "A")
    assert data.n_single == 2 and data.n_overlap == 198
    assert [29, 28] not in data.sequences
    result = train_domain_encoder(data, torch.randn(30, 8),
                                  EncoderTrainConfig(**TINY, epochs=6, patience=6, lr=5e-3), "A")
    assert (result.n_single, result.n_overlap) == (2, 198)
    assert max(e.hr10 for e in result.history) > 0.5  # chance is 10/30


def test_a_large_catalog_trains_with_the_sampled_softmax():
    seqs = walk_sequences(300, 40)
    cfg = EncoderTrainConfig(**TINY, epochs=8, patience=8, lr=5e-3, full_softmax_max_items=20,
                             sampled_negatives=10)
    result = train_domain_encoder(seqs, torch.randn(40, 8), cfg, "A")
    assert result.loss == "sampled" and max(e.hr10 for e in result.history) > 0.5
    with pytest.raises(ValueError, match=r"encoder\.sampled_negatives=40 .* 40 items"):
        train_domain_encoder(seqs, torch.randn(40, 8),
                             EncoderTrainConfig(**TINY, full_softmax_max_items=20,
                                                sampled_negatives=40), "A")


def test_mixed_single_domain_sequence_is_an_error():
    table = sequences_table([{"user": "u", "items": [1, 2], "source_domain": "A",
                              "domains": ["A", "B"]}])
    with pytest.raises(TrainingDataError, match="domain A: 1 single-domain sequences"):
        domain_training_sequences(table, "A")


def test_too_few_sequences_names_domain_and_count():
    seqs = [[1, 2], [3], [4, 5, 6]]
    with pytest.raises(TrainingDataError, match=r"domain B: only 2 training sequences .* \(of 3\)"):
        train_domain_encoder(seqs, torch.randn(8, 4), EncoderTrainConfig(**TINY), "B")


def test_items_outside_the_domain_are_an_error():
    with pytest.raises(TrainingDataError, match="domain A: 1 history items outside the 5 items"):
        train_domain_encoder([[1, 2]] * 20 + [[1, 9]], torch.randn(5, 4),
                             EncoderTrainConfig(**TINY), "A")


@pytest.mark.parametrize(("over", "message"), [
    ({"lr": 0.0}, "encoder.lr"), ({"d": 15}, "not divisible"), ({"epochs": 0}, "encoder.epochs"),
    ({"valid_fraction": 1.0}, "encoder.valid_fraction"), ({"batch_size": 2.5}, "batch_size"),
])
def test_bad_train_config_is_rejected(over, message):
    with pytest.raises(ValueError, match=message):
        EncoderTrainConfig(**over)


def test_metrics_count_ties_against_the_target():
    scores = torch.tensor([[0.1, 0.9, 0.5], [1.0, 1.0, 1.0]])
    ranks = target_ranks(scores, torch.tensor([1, 0]))
    assert ranks.tolist() == [0, 2]
    assert hit_rate(ranks, 1) == 0.5
    assert ndcg(ranks, 3) == pytest.approx((1.0 + 0.5) / 2)

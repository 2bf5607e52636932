"""Baselines on a planted problem: A item k goes with B item k (co-purchase across domains)."""

import numpy as np
import polars as pl
import pytest
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.evaluation.baselines.bag import train_bag
from models.evaluation.baselines.common import Interactions, JointVocab
from models.evaluation.baselines.emcdr import encode, mapping_pairs, train_emcdr
from models.evaluation.baselines.fit import fit_baseline
from models.evaluation.baselines.item_knn import CrossDomainItemKNN
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.baselines.sequential import aligned_examples, train_sequential
from models.evaluation.candidates import sample_all_seeds
from models.evaluation.config import BagConfig, EMCDRConfig, EvaluationConfig, SequentialConfig
from models.evaluation.ranking import eval_users, rank_users, validation_ndcg
from models.metrics import ranking_metrics

N = 20
N_ITEMS = {"A": N, "B": N}


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def planted(n_overlap: int = 200, n_eval: int = 40, seed: int = 0) -> pl.DataFrame:
    """Overlap users buy A item k then B item k; single users repeat one domain's item."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_overlap):
        k = int(rng.integers(N))
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        rows.append({"user": f"o{u:03d}", "split": "train", "kind": "overlap", "items": [k],
                     "domains": [src], "target_item": k, "target_domain": tgt,
                     "source_domain": src})
    for u in range(60):  # popularity: item 0 of each domain is the most bought
        dom = "A" if u % 2 else "B"
        rows.append({"user": f"s{u:03d}", "split": "train", "kind": "single", "items": [0, 0],
                     "domains": [dom, dom], "target_item": None, "target_domain": None,
                     "source_domain": dom})
    for u in range(n_eval):
        k = int(rng.integers(1, N))
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        rows.append({"user": f"e{u:03d}", "split": "test" if u % 4 < 2 else "valid",
                     "kind": "overlap", "items": [k], "domains": [src], "target_item": k,
                     "target_domain": tgt, "source_domain": src})
    return pl.DataFrame(rows, schema_overrides={"target_item": pl.Int32, "items": pl.List(pl.Int32)})


@pytest.fixture(scope="module")
def data():
    seqs = planted()
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 15, "target", (0,))
    return Interactions.from_sequences(seqs), eval_users(seqs), cands


def hr10(scorer, users, cands) -> float:
    ranks = rank_users(scorer, [u for u in users if u.split == "test"], cands, 0, "m")
    return ranking_metrics(ranks["rank"].to_numpy(), (10,))["hr@10"]


def test_interactions_put_overlap_targets_back(data):
    train, _, _ = data
    assert len(train.items) == 260
    assert train.items[0] == [train.items[0][0]] * 2 and train.overlap[0]
    assert train.domains[0] in (["A", "B"], ["B", "A"])


def test_popularity_ranks_the_most_bought_item_first(data):
    train, users, _ = data
    pop = Popularity.fit(train, N_ITEMS)
    scores = pop.score(users[:3], "A", None)  # (3, N)
    assert scores.shape == (3, N) and int(scores[0].argmax()) == 0
    assert torch.equal(scores[0], scores[1])  # the same ranking for every user


def test_item_knn_finds_the_co_purchased_item(data):
    train, users, cands = data
    knn = CrossDomainItemKNN.fit(train, N_ITEMS)
    assert hr10(knn, users, cands) == 1.0
    ranks = rank_users(knn, [u for u in users if u.split == "test"], cands, 0, "knn")
    assert (ranks["rank"] == 0).mean() > 0.9


def test_item_knn_falls_back_to_popularity_for_unseen_items(data):
    train, users, _ = data
    empty = Interactions([[1]], [["A"]], [False])
    knn = CrossDomainItemKNN.fit(empty, N_ITEMS)
    scores = knn.score(users[:2], "B", None)
    assert int(scores[0].argmax()) == 0 or float(scores.max()) == 0.0


@pytest.mark.parametrize("kind", ["sasrec", "gru4rec"])
def test_sequential_baselines_learn_the_planted_map(data, kind):
    train, users, cands = data
    cfg = SequentialConfig(d=16, n_layers=1, n_heads=2, max_len=8, dropout=0.0, lr=1e-2,
                           batch_size=32, epochs=15, patience=15)
    seen = []
    scorer, res = train_sequential(kind, train, JointVocab(N_ITEMS), cfg, seed=0,
                                   validate=lambda s: validation_ndcg(s, users, cands, 0),
                                   on_epoch=seen.append)
    assert len(res.history) == 15 and res.best_metric == max(h["val_ndcg@10"] for h in res.history)
    assert seen == res.history  # progress is reported epoch by epoch
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert hr10(scorer, users, cands) >= 0.9  # random would be 10/16


def test_sequential_sampled_softmax_path_runs(data):
    train, users, cands = data
    cfg = SequentialConfig(d=8, n_layers=1, n_heads=2, max_len=4, epochs=1, sampled_negatives=5)
    scorer, res = train_sequential("sasrec", train, JointVocab(N_ITEMS), cfg, seed=1,
                                   validate=lambda s: validation_ndcg(s, users, cands, 0))
    assert np.isfinite(res.history[0]["loss"])


def encoders(seed: int = 0) -> dict[str, DomainEncoder]:
    torch.manual_seed(seed)
    return {d: DomainEncoder(EncoderConfig(n_items=N, text_dim=4, d=8, n_heads=2, n_layers=1,
                                           max_len=8), torch.randn(N, 4)).eval()
            for d in ("A", "B")}


def test_emcdr_regresses_onto_the_state_before_the_target_item(data):
    _, users, cands = data
    # user 0: A 3, B 4, B 5 -> y encodes B [4] (the held-out 5 stays out), x encodes A [3];
    # user 1 has one B item only, so it has no earlier target state and no AB pair
    train = Interactions([[3, 4, 5], [2, 7], [1, 1]], [["A", "B", "B"], ["A", "B"], ["A", "A"]],
                         [True, True, False])
    encs = encoders()
    pairs = mapping_pairs(train, encs)
    assert tuple(pairs["AB"][0].shape) == (1, 8) and tuple(pairs["BA"][0].shape) == (0, 8)
    torch.testing.assert_close(pairs["AB"][1], encode(encs["B"], [[4]]))
    torch.testing.assert_close(pairs["AB"][0], encode(encs["A"], [[3]]))


def test_emcdr_training(data):
    _, users, cands = data
    rng = np.random.default_rng(0)
    items, doms = [], []
    for u in range(200):  # A k, B k, B k: the map from A item k to B's state after k
        k = int(rng.integers(N))
        s, t = ("A", "B") if u % 2 else ("B", "A")
        items.append([k, k, k])
        doms.append([s, t, t])
    train = Interactions(items, doms, [True] * 200)
    scorer, res = train_emcdr(train, encoders(), EMCDRConfig(hidden=16, epochs=5, patience=5),
                              seed=0, validate=lambda s: validation_ndcg(s, users, cands, 0))
    assert res.history[-1]["loss"] < res.history[0]["loss"]
    assert scorer.score(users[:4], "B", None).shape == (4, N)


def test_target_popularity_counts_only_overlapping_users(data):
    train, users, _ = data
    every, overlap = Popularity.fit(train, N_ITEMS), Popularity.fit(train, N_ITEMS, True)
    # the 60 single-domain users each bought item 0 twice; overlap users bought k at random
    assert float(every.counts["A"][0] - overlap.counts["A"][0]) == 60.0
    assert overlap.counts["A"].sum() + overlap.counts["B"].sum() == 400  # 200 users x 2 items


def test_bag_floor_learns_the_planted_map_and_beats_popularity(data):
    train, users, cands = data
    cfg = BagConfig(d=16, dropout=0.0, lr=2e-2, batch_size=32, epochs=20, patience=20)
    scorer, res = train_bag(train, N_ITEMS, cfg, seed=0,
                            validate=lambda s: validation_ndcg(s, users, cands, 0))
    assert res.best_metric == max(h["val_ndcg@10"] for h in res.history)
    assert hr10(scorer, users, cands) >= 0.9 > hr10(Popularity.fit(train, N_ITEMS), users, cands)


def test_bag_sampled_softmax_path_learns(data):
    train, users, cands = data
    cfg = BagConfig(d=16, dropout=0.0, lr=2e-2, batch_size=32, epochs=20, patience=20,
                    full_softmax_max_items=10, sampled_negatives=8)
    scorer, _ = train_bag(train, N_ITEMS, cfg, seed=0,
                          validate=lambda s: validation_ndcg(s, users, cands, 0))
    assert hr10(scorer, users, cands) >= 0.8


def test_aligned_examples_are_source_only_prefixes_with_the_next_target_item():
    vocab = JointVocab({"A": 10, "B": 10})
    train = Interactions([[1, 2, 5, 3, 6, 7], [4, 4]], [list("AABABB"), list("AA")],
                         [True, False])
    ex = aligned_examples(train, vocab, max_len=50, target="B")
    assert ex.inputs.tolist() == [[1, 2, 3]] and ex.lengths.tolist() == [3]
    # after A 2 comes B 5; after A 3 come B 6 and B 7 (the latest is the label)
    assert ex.labelled.tolist() == [[False, True, True]]
    assert ex.targets[ex.labelled].tolist() == [5, 7] and ex.vocab == slice(10, 20)
    back = aligned_examples(train, vocab, max_len=50, target="A")
    assert back.inputs.tolist() == [[15]]  # B 5 as a joint id; A 3 follows it, nothing after B 6
    assert back.targets[back.labelled].tolist() == [3]
    assert aligned_examples(Interactions([[1]], [["A"]], [True]), vocab, 50, "B") is None


def test_fit_baseline_dispatch(data):
    train, users, cands = data
    cfg = EvaluationConfig(seeds=(0,), sequential=SequentialConfig(d=8, epochs=1, n_heads=2))
    assert fit_baseline("popularity", train, N_ITEMS, cfg, 0, users, cands).best_epoch == 0
    with pytest.raises(ValueError, match="needs the pre-trained"):
        fit_baseline("emcdr", train, N_ITEMS, cfg, 0, users, cands)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("bpr", train, N_ITEMS, cfg, 0, users, cands)


def test_length_buckets_cover_every_sequence_once_with_little_padding():
    from models.evaluation.baselines.sequential import _length_buckets

    lengths = np.random.default_rng(0).integers(2, 50, size=1000)
    batches = _length_buckets(lengths, 16, np.random.default_rng(1), window=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.2 * lengths.sum()  # random batches would pad to ~1.9x

"""SASRec and GRU4Rec over the joint vocabulary: the planted map, aligned examples, length buckets."""

import numpy as np
import pytest

from models.evaluation.baselines.common import Interactions, JointVocab
from models.evaluation.baselines.sequential import (
    _length_buckets,
    aligned_examples,
    build,
    next_item_examples,
    train_sequential,
)
from models.evaluation.config import SequentialConfig
from models.evaluation.ranking import validation_ndcg
from tests.models.evaluation.baselines.planted import N_ITEMS, hr10

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_next_item_examples_predict_every_next_joint_id():
    vocab = JointVocab({"A": 10, "B": 10})
    train = Interactions([[1, 2, 5], [4], [3, 3, 3, 3]], [list("AAB"), list("A"), list("BBBB")],
                         [True, False, False])
    ex = next_item_examples(train, vocab, max_len=2)
    # the one-item user has nothing to predict; the last max_len + 1 ids of the others remain
    assert ex.inputs.tolist() == [[1, 2], [13, 13]] and ex.lengths.tolist() == [2, 2]
    assert ex.targets.tolist() == [[2, 15], [13, 13]] and ex.labelled.all()
    assert ex.vocab == slice(0, 20)
    with pytest.raises(ValueError, match="two or more items"):
        next_item_examples(Interactions([[1]], [["A"]], [False]), vocab, 2)


def test_build_refuses_an_unknown_kind():
    with pytest.raises(ValueError, match=r"sequential baseline 'bert4rec'; allowed \['sasrec', "):
        build("bert4rec", 10, SequentialConfig(d=8, n_heads=2))


def test_length_buckets_cover_every_sequence_once_with_little_padding():
    lengths = np.random.default_rng(0).integers(2, 50, size=1000)
    batches = _length_buckets(lengths, 16, np.random.default_rng(1), window=10)
    flat = np.concatenate(batches)
    assert sorted(flat.tolist()) == list(range(1000))
    padded = sum(len(b) * lengths[b].max() for b in batches)
    assert padded < 1.2 * lengths.sum()  # random batches would pad to ~1.9x

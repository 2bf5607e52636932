"""The bag-of-source-items floor on the planted problem, and its training examples."""

import pytest

from models.evaluation.baselines.bag import bag_examples, train_bag
from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.config import BagConfig
from models.evaluation.ranking import validation_ndcg
from tests.models.evaluation.baselines.planted import N_ITEMS, hr10

pytestmark = pytest.mark.usefixtures("one_torch_thread")


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


def test_bag_examples_pair_all_source_items_with_each_target_item():
    train = Interactions([[1, 5, 2, 6], [3, 3], [4, 7]],
                         [["A", "B", "A", "B"], ["A", "A"], ["A", "B"]], [True, True, False])
    examples = bag_examples(train)
    # order is ignored: both target items of user 0 get both its source items, even A 2 after B 5
    assert examples["AB"] == ([[1, 2], [1, 2]], [5, 6])
    assert examples["BA"] == ([[5, 6], [5, 6]], [1, 2])  # user 1 has no B item; user 2 is single


def test_bag_refuses_training_without_an_overlapping_user_in_both_domains():
    single = Interactions([[1, 2]], [["A", "B"]], [False])
    with pytest.raises(ValueError, match="bag: no overlapping training user"):
        train_bag(single, N_ITEMS, BagConfig(epochs=1, patience=1), seed=0, validate=lambda s: 0.0)

"""Most-popular baselines: popularity over every training user, target popularity over overlap users."""

import pytest
import torch

from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.popularity import Popularity
from tests.models.evaluation.baselines.planted import N_ITEMS, N


def test_popularity_ranks_the_most_bought_item_first(data):
    train, users, _ = data
    pop = Popularity.fit(train, N_ITEMS)
    scores = pop.score(users[:3], "A", None)  # (3, N)
    assert scores.shape == (3, N) and int(scores[0].argmax()) == 0
    assert torch.equal(scores[0], scores[1])  # the same ranking for every user


def test_target_popularity_counts_only_overlapping_users(data):
    train, users, _ = data
    every, overlap = Popularity.fit(train, N_ITEMS), Popularity.fit(train, N_ITEMS, True)
    # the 60 single-domain users each bought item 0 twice; overlap users bought k at random
    assert float(every.counts["A"][0] - overlap.counts["A"][0]) == 60.0
    assert overlap.counts["A"].sum() + overlap.counts["B"].sum() == 400  # 200 users x 2 items


@pytest.mark.parametrize("overlap_only", [False, True])
def test_popularity_scores_candidates_by_their_counts(data, overlap_only):
    train, users, _ = data
    pop = Popularity.fit(train, N_ITEMS, overlap_only)
    cands = torch.tensor([[0, 5, 7], [7, 7, 1]])  # (B=2, C=3)
    scores = pop.score(users[:2], "B", cands)
    assert scores.dtype == torch.float64
    torch.testing.assert_close(scores, pop.counts["B"][cands], rtol=0, atol=0)


def test_popularity_counts_each_interaction_in_its_own_domain():
    train = Interactions([[1, 1, 2], [0]], [["A", "A", "B"], ["B"]], [True, False])
    counts = Popularity.fit(train, {"A": 3, "B": 3}).counts
    assert counts["A"].tolist() == [0.0, 2.0, 0.0] and counts["B"].tolist() == [1.0, 0.0, 1.0]

"""Cross-domain item-KNN: cosine co-occurrence among overlap users, popularity only to break ties."""

import math

import pytest

from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.item_knn import TIE_BREAK, CrossDomainItemKNN
from models.evaluation.ranking import EvalUser, rank_users
from tests.models.evaluation.baselines.planted import N_ITEMS, hr10

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def user(*source_items: int) -> EvalUser:
    """A held-out user with an A history and a B target (the target item plays no part)."""
    return EvalUser("u", "test", source_items, ("A",) * len(source_items), "A", "B", 0)


def test_item_knn_finds_the_co_purchased_item(data):
    train, users, cands = data
    knn = CrossDomainItemKNN.fit(train, N_ITEMS)
    assert hr10(knn, users, cands) == 1.0
    ranks = rank_users(knn, [u for u in users if u.split == "test"], cands, 0, "knn")
    assert (ranks["rank"] == 0).mean() > 0.9


def test_item_knn_falls_back_to_popularity_for_unseen_items(data):
    train, users, _ = data
    # no overlapping user, so no co-occurrence: only the popularity term orders B's items
    singles = Interactions([[1], [3, 3, 5]], [["A"], ["B", "B", "B"]], [False, False])
    knn = CrossDomainItemKNN.fit(singles, N_ITEMS)
    scores = knn.score(users[:2], "B", None)  # (2, N)
    assert (scores[:, 3] > scores[:, 5]).all() and (scores[:, 5] > scores[:, 0]).all()
    assert float(scores.max()) == TIE_BREAK  # far below any co-occurrence


def test_item_knn_similarity_is_the_cosine_of_binary_user_vectors():
    # overlap users: {A0, B1} twice, {A0, A2, B3} once; the single user adds popularity only
    train = Interactions([[0, 1], [0, 1], [0, 2, 3], [4, 4]],
                         [["A", "B"], ["A", "B"], ["A", "A", "B"], ["B", "B"]],
                         [True, True, True, False])
    knn = CrossDomainItemKNN.fit(train, {"A": 3, "B": 5})
    scores = knn.score([user(0), user(2), user(0, 2)], "B", None)  # (3, 5)
    pop = [0.0, 2 / 2, 0.0, 1 / 2, 2 / 2]  # B counts 0, 2, 0, 1, 2 over the largest, 2
    # A0: 3 overlap users, B1: 2, B3: 1; c(A0, B1) = 2, c(A0, B3) = 1, c(A2, B3) = 1
    expected = [[0.0, 2 / math.sqrt(6), 0.0, 1 / math.sqrt(3), 0.0],
                [0.0, 0.0, 0.0, 1.0, 0.0],
                [0.0, 2 / math.sqrt(6), 0.0, 1 / math.sqrt(3) + 1.0, 0.0]]
    for row, want in zip(scores.tolist(), expected, strict=True):
        assert row == pytest.approx([w + TIE_BREAK * p for w, p in zip(want, pop, strict=True)],
                                    rel=1e-12, abs=1e-15)

"""EMCDR: (source state, earlier target state) pairs of overlap users and the fitted maps."""

import numpy as np
import pytest
import torch

from models.encoders.sequence import DomainEncoder, EncoderConfig
from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.emcdr import encode, mapping_pairs, train_emcdr
from models.evaluation.config import EMCDRConfig
from models.evaluation.ranking import validation_ndcg
from tests.models.evaluation.baselines.planted import N

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def encoders(seed: int = 0) -> dict[str, DomainEncoder]:
    """Untrained (random) domain encoders with N items each, d=8."""
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


def test_emcdr_refuses_training_without_a_single_pair():
    no_earlier_target = Interactions([[3, 4]], [["A", "B"]], [True])
    with pytest.raises(ValueError, match="EMCDR: no overlapping training user"):
        train_emcdr(no_earlier_target, encoders(), EMCDRConfig(hidden=16, epochs=1, patience=1),
                    seed=0, validate=lambda s: 0.0)


def test_encode_in_batches_gives_the_same_states_and_no_rows_for_no_sequences():
    enc = encoders()["A"]
    seqs = [[1], [2, 3], [4, 5, 6], [7]]
    # batches of 3 and 1 pad to other widths than one batch of 4: the states must not change
    torch.testing.assert_close(encode(enc, seqs, batch=3), encode(enc, seqs))
    assert tuple(encode(enc, []).shape) == (0, 8)

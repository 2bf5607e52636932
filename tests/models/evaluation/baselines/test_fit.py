"""fit_baseline: one entry point that dispatches on the baseline's name."""

import pytest

from models.evaluation.baselines.fit import fit_baseline
from models.evaluation.baselines.item_knn import CrossDomainItemKNN
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.config import EvaluationConfig, SequentialConfig
from tests.models.evaluation.baselines.planted import N_ITEMS

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fit_baseline_dispatch(data):
    train, users, cands = data
    cfg = EvaluationConfig(seeds=(0,), sequential=SequentialConfig(d=8, epochs=1, n_heads=2))
    assert fit_baseline("popularity", train, N_ITEMS, cfg, 0, users, cands).best_epoch == 0
    with pytest.raises(ValueError, match="needs the pre-trained"):
        fit_baseline("emcdr", train, N_ITEMS, cfg, 0, users, cands)
    with pytest.raises(ValueError, match="unknown baseline"):
        fit_baseline("bpr", train, N_ITEMS, cfg, 0, users, cands)


def test_untrained_baselines_have_no_validation_and_trained_ones_keep_their_history(data):
    train, users, cands = data
    cfg = EvaluationConfig(seeds=(0,), sequential=SequentialConfig(d=8, n_heads=2, max_len=4,
                                                                   epochs=2, patience=2))
    target = fit_baseline("target_popularity", train, N_ITEMS, cfg, 0, users, cands)
    assert isinstance(target.scorer, Popularity)
    assert target.scorer.counts["A"].sum() + target.scorer.counts["B"].sum() == 400  # overlap only
    knn = fit_baseline("item_knn", train, N_ITEMS, cfg, 0, users, cands)
    assert isinstance(knn.scorer, CrossDomainItemKNN)
    assert (knn.val_ndcg10, knn.history) == (None, []) == (target.val_ndcg10, target.history)
    epochs = []
    gru = fit_baseline("gru4rec", train, N_ITEMS, cfg, 0, users, cands, on_epoch=epochs.append)
    assert len(gru.history) == 2 and epochs == gru.history
    assert gru.val_ndcg10 == max(h["val_ndcg@10"] for h in gru.history)

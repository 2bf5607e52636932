"""Scoring with LGCD: candidates or the whole catalog, the same scores for the same seed."""

import numpy as np
import pytest
import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.data import rows_from_records
from models.lgcd.inference import score_rows
from models.lgcd.model import LGCD
from tests.models.lgcd.fakes import planted_problem, pretrained_fake_encoders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def scored():
    records, text, n_items = planted_problem(text_dim=12, n_pseudo=8, n_overlap=4, n_eval=20,
                                             items_per_theme=4, n_k=4, seed=2)
    torch.manual_seed(0)
    model = LGCD(LGCDConfig(d=12, T=6, seed=0), pretrained_fake_encoders(text)).eval()
    valid = [r for r in rows_from_records(records) if r.kind == "eval"]
    return model, valid, n_items


def test_candidate_scores_follow_the_rows_and_repeat_with_the_seed(scored):
    model, valid, n_items = scored
    cand = np.stack([np.r_[r.target_item, (np.arange(3) + r.target_item + 1) % n_items[r.target_domain]]
                     for r in valid])  # (R, 4), target first
    a = score_rows(model, valid, cand, seed=5, batch_size=7)  # batches mix directions
    assert a.shape == (len(valid), 4) and np.isfinite(a).all()
    np.testing.assert_array_equal(a, score_rows(model, valid, cand, seed=5, batch_size=7))
    assert not np.array_equal(a, score_rows(model, valid, cand, seed=6))  # the reverse process is seeded


def test_full_catalog_scores_need_one_target_domain(scored):
    model, valid, n_items = scored
    to_b = [r for r in valid if r.target_domain == "B"]
    assert score_rows(model, to_b, seed=0).shape == (len(to_b), n_items["B"])
    with pytest.raises(ValueError, match="score each target domain separately"):
        score_rows(model, valid)
    assert score_rows(model, [], np.zeros((0, 4), dtype=np.int64)).shape == (0, 0)

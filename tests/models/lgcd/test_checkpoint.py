"""A fitted model published as a checkpoint round-trips exactly and scores the same."""


import numpy as np
import pytest

from models.lgcd.checkpoint import checkpoint_parts, lgcd_from_checkpoint
from models.lgcd.fitting import fit, history_markdown
from models.lgcd.inference import score_rows
from models.lgcd.rows import training_rows, validation_rows
from models.lgcd.variants import VariantSpec
from tests.models.lgcd.conftest import CFG, CPU, assert_same_state, encoders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_fit_publishes_a_checkpoint_that_round_trips_and_scores(tables):
    sequences, pseudo, text, n_items = tables
    train, _ = training_rows(sequences, pseudo, n_k=4)
    valid, _ = validation_rows(sequences)
    model, result = fit(CFG, encoders(text), train, valid, CPU, valid_negatives=10)
    assert len(result.train.history) == 3 and result.steps_this_call == result.train.steps > 0
    assert result.steps_per_s > 0 and result.eval_seconds > 0
    spec = VariantSpec("full")
    state, config, extra = checkpoint_parts(model, result, spec, {"A": "va", "B": "vb"},
                                            {"overlap": 12})
    assert not any(k.startswith("encoders.") for k in state)  # frozen encoders live upstream
    assert "seconds" not in extra["history"][0] and extra["encoder_versions"]["B"] == "vb"
    clone = lgcd_from_checkpoint(state, config, encoders(text))
    assert_same_state(model.state_dict(), clone.state_dict())
    cand = np.stack([np.r_[r.target_item, (np.arange(5) + r.target_item + 1) % n_items["A"]]
                     for r in valid])  # (R, 6), target first
    a, b = score_rows(model, valid, cand, seed=0), score_rows(clone, valid, cand, seed=0)
    assert a.shape == (40, 6)
    np.testing.assert_array_equal(a, b)
    same_dir = [r for r in valid if r.direction == "AB"]
    full = score_rows(model, same_dir, seed=0)
    assert full.shape == (len(same_dir), n_items["B"])
    with pytest.raises(ValueError, match="score each target domain separately"):
        score_rows(model, valid)
    assert "| 1 " in history_markdown(result.train.history, result.train.best_epoch)

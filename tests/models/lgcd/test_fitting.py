"""Fitting one variant: size checks that say what to fix, resume after a crash, the training lock."""

import dataclasses
import os

import pytest

from models.lgcd.checkpoint import checkpoint_parts
from models.lgcd.fitting import LGCDDataError, TrainingInProgressError, checkpoint_lock, fit
from models.lgcd.rows import training_rows, validation_rows
from models.lgcd.variants import VariantSpec
from tests.models.lgcd.conftest import CFG, CPU, assert_same_state, encoders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_mismatched_sizes_and_empty_inputs_say_what_to_fix(tables):
    sequences, pseudo, text, _ = tables
    train, _ = training_rows(sequences, pseudo, n_k=4)
    valid, _ = validation_rows(sequences)
    with pytest.raises(LGCDDataError, match="re-materialize sequence_encoder_a and _b"):
        fit(dataclasses.replace(CFG, d=16), encoders(text), train, valid, CPU)
    with pytest.raises(LGCDDataError, match="no LGCD training rows"):
        fit(CFG, encoders(text), [], valid, CPU)
    with pytest.raises(LGCDDataError, match="valid split is empty"):
        fit(CFG, encoders(text), train, [], CPU)
    one_way = [r for r in valid if r.direction == "AB"]
    with pytest.raises(LGCDDataError, match="none for BA: set lgcd.early_stopping: joint"):
        fit(dataclasses.replace(CFG, early_stopping="per_direction"), encoders(text), train,
            one_way, CPU)

def test_interrupted_fit_resumes_from_last_epoch_to_identical_weights(tables, tmp_path):
    """A run killed after epoch 1 resumes from last.pt and ends bit-identical on CPU.

    Tolerance: exact (rtol = atol = 0). Batches are a pure function of (seed, epoch) and
    the RNG state is restored from last.pt; on one thread CPU kernels are deterministic.
    On CUDA, atomics in some kernels can differ in the last bits, so compare with a
    tolerance there.
    """
    sequences, pseudo, text, _ = tables
    train, _ = training_rows(sequences, pseudo, n_k=4)
    valid, _ = validation_rows(sequences)
    straight, ref = fit(CFG, encoders(text), train, valid, CPU, tmp_path / "straight", 10)

    def die_after_first(h):
        if h["epoch"] == 1:
            raise KeyboardInterrupt("simulated crash after epoch 1")

    with pytest.raises(KeyboardInterrupt):
        fit(CFG, encoders(text), train, valid, CPU, tmp_path / "crash", 10, die_after_first)
    assert (tmp_path / "crash" / "last.pt").is_file()
    resumed, res = fit(CFG, encoders(text), train, valid, CPU, tmp_path / "crash", 10)
    assert res.train.resumed_from == 1 and res.steps_this_call == 2 * res.steps_per_epoch
    assert_same_state(straight.state_dict(), resumed.state_dict())
    spec = VariantSpec("full")
    assert checkpoint_parts(straight, ref, spec, {}, {})[2] == \
        checkpoint_parts(resumed, res, spec, {}, {})[2]

def test_a_live_trainer_in_the_same_folder_is_refused_and_its_death_frees_it(tables, tmp_path):
    sequences, pseudo, text, _ = tables
    train, _ = training_rows(sequences, pseudo, n_k=4)
    valid, _ = validation_rows(sequences)
    one_epoch = dataclasses.replace(CFG, epochs=1)
    busy = pytest.raises(TrainingInProgressError, match=f"process {os.getpid()} is still training")
    with checkpoint_lock(tmp_path / "ckpt"), busy:  # the lock stands in for an orphaned step
        fit(one_epoch, encoders(text), train, valid, CPU, tmp_path / "ckpt", 10)
    _, result = fit(one_epoch, encoders(text), train, valid, CPU, tmp_path / "ckpt", 10)
    assert len(result.train.history) == 1

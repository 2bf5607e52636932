"""Device checks: the model code runs on CUDA and agrees with the CPU.

Marked ``gpu``: without a CUDA device they skip and say so (tests/conftest.py); on a
GPU box ``pytest -m gpu`` runs them. ``bench/gpu_check.sh`` times the same parts.
"""

import copy

import numpy as np
import pytest
import torch

from models.device import resolve_device
from models.lgcd.config import LGCDConfig
from models.lgcd.data import rows_from_records
from models.lgcd.fitting import fit
from models.lgcd.inference import score_rows
from tests.models.lgcd.fakes import planted_problem, pretrained_fake_encoders

pytestmark = pytest.mark.gpu

CFG = LGCDConfig(d=12, T=6, batch_size=32, overlap_batch_size=8, epochs=2, patience=2, seed=3, n_k=4)


def problem():
    records, text, _ = planted_problem(text_dim=12, n_pseudo=64, n_overlap=12, n_eval=40,
                                       items_per_theme=4, n_k=4, seed=1)
    rows = rows_from_records(records)
    train = [r for r in rows if r.kind != "eval"]
    valid = [r for r in rows if r.kind == "eval"]
    torch.manual_seed(0)
    return train, valid, pretrained_fake_encoders(text)


def test_auto_picks_cuda():
    assert resolve_device("auto").type == "cuda"


def test_a_model_trained_on_cuda_scores_like_its_copy_on_the_cpu():
    train, valid, encoders = problem()
    model, result = fit(CFG, encoders, train, valid, torch.device("cuda"), valid_negatives=20)
    assert next(model.parameters()).is_cuda
    assert all(np.isfinite(h["loss_total"]) for h in result.train.history)
    on_cpu = copy.deepcopy(model).cpu()
    rng = np.random.default_rng(0)
    same_dir = [r for r in valid if r.direction == valid[0].direction]
    n_target = int(on_cpu.encoders[same_dir[0].target_domain].item_table().shape[0])
    candidates = rng.integers(0, n_target, size=(len(same_dir), 10))
    gpu_scores = score_rows(model, same_dir, candidates, seed=0)
    cpu_scores = score_rows(on_cpu, same_dir, candidates, seed=0)
    # the reverse process draws its noise on each device's own generator: compare rankings
    agree = np.mean(np.argmax(gpu_scores, 1) == np.argmax(cpu_scores, 1))
    assert gpu_scores.shape == cpu_scores.shape and agree >= 0.8

import dataclasses

import numpy as np
import pytest
import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.data import TrainBatches, collate, rows_from_records
from models.lgcd.model import LGCD
from models.lgcd.training import MONITOR, CandidateEvaluator, train_lgcd
from models.train import LoopConfig, save_checkpoint, train_loop
from tests.models.lgcd.fakes import planted_problem, pretrained_fake_encoders

CFG = LGCDConfig(d=12, T=6, batch_size=32, overlap_batch_size=8, epochs=3, patience=3, seed=3)


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def problem():
    records, text, n_items = planted_problem(text_dim=12, n_pseudo=64, n_overlap=12, n_eval=40,
                                             items_per_theme=4, seed=1)
    rows = rows_from_records(records)
    return ([r for r in rows if r.kind != "eval"], [r for r in rows if r.kind == "eval"], text,
            n_items)


def build(problem, cfg=CFG) -> LGCD:
    torch.manual_seed(cfg.seed)
    return LGCD(cfg, pretrained_fake_encoders(problem[2]))


def evaluator(problem):
    return CandidateEvaluator(problem[1], problem[3], n_negatives=10, k=10, seed=0)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_checkpoint_round_trip_is_exact(problem, tmp_path):
    model = build(problem)
    train_lgcd(model, TrainBatches(problem[0], dataclasses.replace(CFG, epochs=1)),
               evaluator(problem))
    save_checkpoint(tmp_path / "m.pt", {"model": model.state_dict(), "config": CFG.to_dict()})
    loaded = torch.load(tmp_path / "m.pt", weights_only=False)
    clone = build(problem, LGCDConfig.from_dict(loaded["config"]))
    clone.load_state_dict(loaded["model"])
    assert_same_state(model.state_dict(), clone.state_dict())
    b = collate(problem[1]).paths["AB"]
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    torch.testing.assert_close(model.eval().score("AB", b, generator=gen()),
                               clone.eval().score("AB", b, generator=gen()), rtol=0, atol=0)


def test_resume_after_crash_continues_identically(problem, tmp_path):
    straight = build(problem)
    reference = train_lgcd(straight, TrainBatches(problem[0], CFG), evaluator(problem),
                           checkpoint_dir=tmp_path / "straight")

    calls = {"n": 0}
    real_eval = evaluator(problem)

    def crashing(model):
        calls["n"] += 1
        if calls["n"] == 2:  # dies in epoch 2, after its training steps, before its checkpoint
            raise RuntimeError("simulated crash")
        return real_eval(model)

    crashed_dir = tmp_path / "crashed"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_lgcd(build(problem), TrainBatches(problem[0], CFG), crashing,
                   checkpoint_dir=crashed_dir)
    resumed_model = build(problem)
    resumed = train_lgcd(resumed_model, TrainBatches(problem[0], CFG), evaluator(problem),
                         checkpoint_dir=crashed_dir)
    assert resumed.resumed_from == 1
    assert_same_state(straight.state_dict(), resumed_model.state_dict())
    assert_same_state(reference.state_dict, resumed.state_dict)
    strip = [{k: v for k, v in h.items() if k != "seconds"} for h in reference.history]
    assert strip == [{k: v for k, v in h.items() if k != "seconds"} for h in resumed.history]
    assert resumed.steps == reference.steps and resumed.best_epoch == reference.best_epoch
    # a finished run resumes to its result without training again
    again = train_lgcd(build(problem), TrainBatches(problem[0], CFG), evaluator(problem),
                       checkpoint_dir=crashed_dir)
    assert again.steps == reference.steps and len(again.history) == 3


def test_early_stopping_returns_best_epoch(problem):
    cfg = dataclasses.replace(CFG, epochs=10, patience=2)
    scores = iter([0.3, 0.5, 0.4, 0.45, 0.9])
    states = []

    def fake_eval(model):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"hr@10": 0.0, "ndcg@10": next(scores)}

    result = train_lgcd(build(problem, cfg), TrainBatches(problem[0], cfg), fake_eval)
    assert len(result.history) == 4 and result.stopped_early
    assert result.best_epoch == 2 and result.best_metric == 0.5
    assert_same_state(result.state_dict, states[1])
    assert [h["epoch"] for h in result.history] == [1, 2, 3, 4]
    assert {"loss_total", "loss_diff", "loss_rec", "hr@10", "ndcg@10"} <= set(result.history[0])


def test_per_direction_early_stopping_keeps_each_paths_own_best_epoch(problem, tmp_path):
    """Each transfer path ends with the weights of its own best validation, the encoders are
    untouched, the assembled model is what ``selected`` measured, and a resume after a crash
    keeps the per-direction choice."""
    cfg = dataclasses.replace(CFG, epochs=10, patience=2, early_stopping="per_direction")
    script = iter([(0.3, 0.1), (0.5, 0.2), (0.4, 0.6), (0.1, 0.1), (0.1, 0.1)])
    states, real = [], evaluator(problem)

    def scripted(model):
        states.append({k: v.clone() for k, v in model.state_dict().items()})
        ab, ba = next(script, (None, None))
        if ab is None:  # the assembled model: a real validation
            return real(model)
        return {"hr@10": 0.0, "ndcg@10": (ab + ba) / 2, "ndcg@10/AB": ab, "ndcg@10/BA": ba}

    model = build(problem, cfg)
    result = train_lgcd(model, TrainBatches(problem[0], cfg), scripted,
                        checkpoint_dir=tmp_path)
    assert result.best_epochs == {"AB": 2, "BA": 3} and result.best_epoch == 3
    assert len(result.history) == 5 and result.stopped_early
    for key, value in result.state_dict.items():
        epoch = 2 if key.startswith("paths.AB.") else 3 if key.startswith("paths.BA.") else 1
        torch.testing.assert_close(value, states[epoch - 1][key], rtol=0, atol=0, msg=key)
    assert result.selected == real(model) and result.best_metric == result.selected["ndcg@10"]
    again = train_lgcd(build(problem, cfg), TrainBatches(problem[0], cfg), real,
                       checkpoint_dir=tmp_path)  # finished: resumes to the same choice
    assert again.best_epochs == result.best_epochs
    assert_same_state(again.state_dict, result.state_dict)


def test_per_direction_early_stopping_needs_frozen_encoders():
    with pytest.raises(ValueError, match="early_stopping='per_direction' needs frozen encoders"):
        LGCDConfig(early_stopping="per_direction", finetune_encoders=True)
    with pytest.raises(ValueError, match="early_stopping='sometimes'"):
        LGCDConfig(early_stopping="sometimes")


def test_checkpoint_from_another_config_is_refused(problem, tmp_path):
    cfg1 = dataclasses.replace(CFG, epochs=1)
    train_lgcd(build(problem, cfg1), TrainBatches(problem[0], cfg1), evaluator(problem),
               checkpoint_dir=tmp_path)
    cfg2 = dataclasses.replace(cfg1, lr=5e-4)
    with pytest.raises(ValueError, match="another LGCD config"):
        train_lgcd(build(problem, cfg2), TrainBatches(problem[0], cfg2), evaluator(problem),
                   checkpoint_dir=tmp_path)


class _Payload:
    """Any class: a pickle that references one must never be loaded."""


def test_resume_checkpoint_carrying_objects_is_refused(problem, tmp_path):
    torch.save({"config": CFG.to_dict(), "payload": _Payload()}, tmp_path / "last.pt")
    with pytest.raises(ValueError, match="objects other than tensors"):
        train_lgcd(build(problem, CFG), TrainBatches(problem[0], CFG), evaluator(problem),
                   checkpoint_dir=tmp_path)


def test_candidate_evaluator_samples_valid_candidates(problem):
    ev = CandidateEvaluator(problem[1], problem[3], n_negatives=10, seed=0)
    for row, cand in zip(problem[1], ev.candidates, strict=True):
        assert cand[0] == row.target_item and len(cand) == 11
        assert len(set(cand.tolist())) == 11 and row.target_item not in cand[1:]
        assert cand.max() < problem[3][row.target_domain]
    everything = CandidateEvaluator(problem[1], problem[3], n_negatives=999, seed=0)
    assert all(sorted(c.tolist()) == list(range(24)) for c in everything.candidates)
    metrics = ev(build(problem))
    assert set(metrics) >= {"hr@10", "ndcg@10", "hr@10/AB", "ndcg@10/BA"}
    assert all(0.0 <= v <= 1.0 for v in metrics.values())
    assert metrics == ev(build(problem))  # reproducible noise in the reverse process
    # both directions hold 20 rows, so the overall figure is their mean
    assert metrics["hr@10"] == pytest.approx((metrics["hr@10/AB"] + metrics["hr@10/BA"]) / 2)


def test_candidate_evaluator_draws_as_before_the_shared_sampler(problem):
    """Pins the validation lists (hence LGCD's early stopping and checkpoints): the shared
    ``sample_negatives`` makes the same single ``rng.choice`` per row, in row order, as the
    sampling written inline here before it."""
    for n_negatives in (10, 23, 999):
        ev = CandidateEvaluator(problem[1], problem[3], n_negatives=n_negatives, seed=5)
        rng = np.random.default_rng([5, 11])
        for row, cand in zip(problem[1], ev.candidates, strict=True):
            n = problem[3][row.target_domain]
            negatives = (np.arange(n - 1) if n - 1 <= n_negatives
                         else rng.choice(n - 1, size=n_negatives, replace=False))
            negatives = negatives + (negatives >= row.target_item)
            expected = np.concatenate([[row.target_item], negatives]).astype(np.int64)
            np.testing.assert_array_equal(cand, expected)
            assert cand.dtype == np.int64


def test_gradient_norms_per_term_are_logged_without_changing_the_training(problem):
    """Every history row holds each active term's gradient norm; the probe's forward runs in a
    forked RNG, so the weights equal those of the same loop run without it."""
    logged = train_lgcd(build(problem), TrainBatches(problem[0], CFG), evaluator(problem))
    for row in logged.history:
        assert all(row[f"gradnorm_{t}"] > 0 for t in ("diff", "guess", "align", "rec")), row
    model = build(problem)
    optimizer = torch.optim.Adam(model.parameters(), lr=CFG.lr)
    batches, evaluate = TrainBatches(problem[0], CFG), evaluator(problem)
    plain = train_loop(model, optimizer, batches.epoch, lambda b: model(b)[1],
                       lambda: evaluate(model),
                       LoopConfig(epochs=CFG.epochs, patience=CFG.patience, precision="fp32",
                                  monitor=MONITOR),
                       seed=CFG.seed, steps_per_epoch=batches.steps_per_epoch)
    assert not any(k.startswith("gradnorm_") for k in plain.history[0])
    assert_same_state(logged.state_dict, plain.state_dict)

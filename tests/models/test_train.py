"""The shared training loop: best-weights restore, patience, mid-epoch resume, NaN stop."""

import pytest
import torch
from torch import nn

from models.train import LoopConfig, TrainingDivergedError, train_loop

pytestmark = pytest.mark.usefixtures("one_torch_thread")

X = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
Y = X @ torch.tensor([1.0, -2.0, 0.5, 3.0]) + 0.1


def make(seed: int = 0) -> tuple[nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(seed)
    model = nn.Sequential(nn.Linear(4, 8), nn.Dropout(0.3), nn.Linear(8, 1))
    return model, torch.optim.Adam(model.parameters(), lr=1e-2)


def batches(epoch: int):
    """8 batches per epoch, a pure function of the epoch."""
    order = torch.randperm(64, generator=torch.Generator().manual_seed(epoch))
    return [order[i:i + 8] for i in range(0, 64, 8)]


def loss_of(model):
    def loss(idx):
        err = model(X[idx]).squeeze(1) - Y[idx]
        return {"total": err.pow(2).mean(), "abs": err.abs().mean()}
    return loss


def negative_mse(model):
    return lambda: {"ndcg@10": -float((model(X).squeeze(1) - Y).pow(2).mean())}


def fit(model, opt, cfg, validate=None, **kw):
    return train_loop(model, opt, batches, loss_of(model), validate or negative_mse(model), cfg,
                      seed=3, steps_per_epoch=8, fingerprint={"lr": 1e-2}, **kw)


def same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_best_validation_weights_are_restored_and_patience_counts_validations():
    model, opt = make()
    scores = iter([0.1, 0.5, 0.3, 0.2, 0.9])
    seen = []

    def scripted():
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        return {"ndcg@10": next(scores), "hr@10": 0.0}

    res = fit(model, opt, LoopConfig(epochs=10, patience=2, precision="fp32"), scripted)
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4] and res.stopped_early
    assert res.best_epoch == 2 and res.best_metric == 0.5 and res.steps == 32
    assert res.selected == {"ndcg@10": 0.5, "hr@10": 0.0}
    same(res.state_dict, seen[1])
    same(model.state_dict(), seen[1])  # the model ends holding the best weights
    assert {"loss", "loss_total", "loss_abs", "step", "seconds"} <= set(res.history[0])
    assert not model.training


class TwoParts(nn.Module):
    """Two independent regressors, like LGCD's two directions over frozen encoders."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.a, self.b = nn.Linear(4, 1), nn.Linear(4, 1)
        self.frozen = nn.Linear(4, 1).requires_grad_(False)

    def forward(self, x):
        return self.a(x) + self.b(x) + self.frozen(x)


def test_independent_parts_keep_their_own_best_weights():
    model = TwoParts()
    opt = torch.optim.Adam([p for p in model.parameters() if p.requires_grad], lr=1e-2)
    scores = iter([(0.1, 0.5), (0.4, 0.2), (0.3, 0.6), (0.2, 0.1), (0.0, 0.0)])
    seen = []

    def scripted():
        seen.append({k: v.clone() for k, v in model.state_dict().items()})
        a, b = next(scores, (0.25, 0.35))  # the last call validates the assembled model
        return {"ndcg@10": (a + b) / 2, "ndcg@10/a": a, "ndcg@10/b": b}

    cfg = LoopConfig(epochs=10, patience=2, precision="fp32",
                     parts=(("a.", "ndcg@10/a"), ("b.", "ndcg@10/b")))
    res = train_loop(model, opt, batches, lambda i: (model(X[i]).squeeze(1) - Y[i]).pow(2).mean(),
                     scripted, cfg, seed=3, steps_per_epoch=8)
    # part a is best at validation 2, part b at 3; 4 and 5 improve neither: patience ends it
    assert [h["epoch"] for h in res.history] == [1, 2, 3, 4, 5] and res.stopped_early
    assert res.part_epochs == {"a.": 2, "b.": 3} and res.best_epoch == 3
    assert res.part_best == {"a.": 0.4, "b.": 0.6}
    for key, value in model.state_dict().items():
        want = seen[1 if key.startswith("a.") else 2][key]
        torch.testing.assert_close(value, want, rtol=0, atol=0, msg=key)
    assert res.best_metric == 0.3 and len(seen) == 6  # the assembled model, validated once more
    assert res.selected == {"ndcg@10": 0.3, "ndcg@10/a": 0.25, "ndcg@10/b": 0.35}


def test_parts_must_hold_every_trainable_parameter():
    model = TwoParts()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    cfg = LoopConfig(epochs=1, patience=1, parts=(("a.", "ndcg@10/a"),))
    with pytest.raises(ValueError, match="outside every part, e.g. b.weight"):
        train_loop(model, opt, batches, lambda i: model(X[i]).sum(), lambda: {}, cfg, seed=0,
                   steps_per_epoch=8)
    with pytest.raises(ValueError, match="distinct and disjoint"):
        LoopConfig(epochs=1, patience=1, parts=(("a", "x"), ("a.b", "y")))


def test_validation_every_n_steps_within_epochs():
    model, opt = make()
    res = fit(model, opt, LoopConfig(epochs=2, patience=10, eval_every=3, precision="fp32"))
    # steps 3 and 6 of each epoch, then the epoch's end
    assert [h["epoch"] for h in res.history] == [0.375, 0.75, 1, 1.375, 1.75, 2]
    assert [h["step"] for h in res.history] == [3, 6, 8, 11, 14, 16]


def test_resume_mid_epoch_after_a_crash_is_identical(tmp_path):
    cfg = LoopConfig(epochs=3, patience=10, eval_every=3, precision="fp32")
    straight_model, opt = make()
    straight = fit(straight_model, opt, cfg, checkpoint_dir=tmp_path / "a")

    model, opt = make()
    real, calls = negative_mse(model), {"n": 0}

    def crashing():
        calls["n"] += 1
        if calls["n"] == 5:  # mid epoch 2, after 11 steps; last.pt holds step 8
            raise RuntimeError("simulated crash")
        return real()

    with pytest.raises(RuntimeError, match="simulated crash"):
        fit(model, opt, cfg, crashing, checkpoint_dir=tmp_path / "b")
    model, opt = make(seed=7)  # other initial weights: everything must come from last.pt
    resumed = fit(model, opt, cfg, checkpoint_dir=tmp_path / "b")
    assert resumed.resumed_from == 4
    same(straight.state_dict, resumed.state_dict)
    same(straight_model.state_dict(), model.state_dict())
    strip = lambda hs: [{k: v for k, v in h.items() if k != "seconds"} for h in hs]  # noqa: E731
    assert strip(straight.history) == strip(resumed.history)
    assert straight.steps == resumed.steps == 24


def test_a_last_pt_without_a_selection_resumes_with_its_best_history_row(tmp_path):
    """A last.pt written before the loop stored ``selected`` still reports the validation
    of the weights it publishes: the history row of its best epoch."""
    cfg = LoopConfig(epochs=2, patience=10, precision="fp32")
    model, opt = make()
    done = fit(model, opt, cfg, checkpoint_dir=tmp_path)
    ckpt = torch.load(tmp_path / "last.pt", weights_only=True)
    del ckpt["selected"]
    torch.save(ckpt, tmp_path / "last.pt")
    model, opt = make(seed=7)
    resumed = fit(model, opt, cfg, checkpoint_dir=tmp_path)
    assert resumed.resumed_from == len(done.history)
    best_row = next(h for h in done.history if h["epoch"] == done.best_epoch)
    assert resumed.selected == best_row
    assert resumed.selected["ndcg@10"] == done.best_metric


def test_a_checkpoint_of_another_configuration_is_refused(tmp_path):
    model, opt = make()
    fit(model, opt, LoopConfig(epochs=1, patience=1, precision="fp32"), checkpoint_dir=tmp_path)
    model, opt = make()
    with pytest.raises(ValueError, match="another model config"):
        train_loop(model, opt, batches, loss_of(model), negative_mse(model),
                   LoopConfig(epochs=1, patience=1), seed=3, steps_per_epoch=8,
                   fingerprint={"lr": 5e-3}, checkpoint_dir=tmp_path)


def test_a_non_finite_loss_stops_with_the_step_and_terms_named(tmp_path):
    model, opt = make()
    calls = {"n": 0}

    def exploding(idx):
        calls["n"] += 1
        out = loss_of(model)(idx)
        if calls["n"] == 3:
            out["abs"] = out["abs"] * float("nan")
            out["total"] = out["total"] + out["abs"]
        return out

    with pytest.raises(TrainingDivergedError, match=r"step 3 \(epoch 1\): total=nan, abs=nan"):
        train_loop(model, opt, batches, exploding, negative_mse(model),
                   LoopConfig(epochs=2, patience=2), seed=3, steps_per_epoch=8,
                   checkpoint_dir=tmp_path, name="toy")
    assert not (tmp_path / "last.pt").exists()  # nothing was saved that a resume could trust


@pytest.mark.parametrize("over, message", [({"epochs": 0}, "epochs=0"),
                                           ({"patience": 1.5}, "patience=1.5"),
                                           ({"eval_every": -1}, "eval_every=-1"),
                                           ({"precision": "fp16"}, "precision='fp16'")])
def test_bad_loop_config_is_rejected(over, message):
    with pytest.raises(ValueError, match=message):
        LoopConfig(**{"epochs": 1, "patience": 1, **over})


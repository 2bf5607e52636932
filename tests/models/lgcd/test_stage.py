"""The glue between pipeline tables and LGCD: variants, rows, fitting with resume, loading."""

import dataclasses
import os

import numpy as np
import polars as pl
import pytest
import torch

from models.lgcd.config import LGCDConfig
from models.lgcd.data import row_from_record
from models.lgcd.model import LGCD
from models.lgcd.stage import (
    LGCDDataError,
    LGCDStageConfig,
    TrainingInProgressError,
    VariantSpec,
    checkpoint_lock,
    checkpoint_parts,
    fit,
    history_markdown,
    lgcd_from_checkpoint,
    score_rows,
    target_counts,
    training_rows,
    validation_rows,
)
from tests.models.lgcd.fakes import fake_encoders, planted_problem, pretrained_fake_encoders

CFG = LGCDConfig(d=12, T=6, batch_size=32, overlap_batch_size=8, epochs=3, patience=3, seed=3,
                 n_k=4)
CPU = torch.device("cpu")


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.fixture(scope="module")
def tables():
    """The planted problem as the pipeline's ``sequences`` and ``pseudo_sequences`` tables."""
    records, text, n_items = planted_problem(text_dim=12, n_pseudo=64, n_overlap=12, n_eval=40,
                                             items_per_theme=4, n_k=4, seed=1)
    seqs, pseudo = [], []
    for r in records:
        if "is_pseudo" in r:
            tgt = "B" if r["source_domain"] == "A" else "A"
            ranked = [i for i, p in zip(r["items"], r["is_pseudo"], strict=True) if p][::-1]
            pseudo.append({"user": r["user"], "source_domain": r["source_domain"],
                           "target_domain": tgt, "items": r["items"], "domains": r["domains"],
                           "is_pseudo": r["is_pseudo"], "pseudo_items": ranked, "fallback": False})
            seqs.append({"user": r["user"], "split": "train", "kind": "single",
                         "items": [i for i, p in zip(r["items"], r["is_pseudo"], strict=True)
                                   if not p],
                         "source_domain": r["source_domain"], "target_domain": None,
                         "target_item": None})
        else:
            seqs.append({k: r[k] for k in ("user", "split", "kind", "items", "source_domain",
                                           "target_domain", "target_item")})
        seqs[-1]["domains"] = [r["source_domain"]] * len(seqs[-1]["items"]) \
            if "is_pseudo" in r else r["domains"]
    return pl.DataFrame(seqs), pl.DataFrame(pseudo), text, n_items


def encoders(text):
    torch.manual_seed(0)  # the fakes' ID tables are random: the same "pre-trained" ones each time
    return pretrained_fake_encoders(text)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_variants_layer_base_preset_and_overrides():
    stage = LGCDStageConfig.from_mapping(
        {"epochs": 7, "variants": ["full", "wo_moe", {"name": "experts_4", "n_experts": 4},
                                   {"name": "cfg_w2", "preset": "cond_cfg", "cfg_weight": 2.0},
                                   {"name": "overlap_20", "overlap_ratio": 0.2},
                                   {"name": "pseudo_none", "pseudo_source": "none"}]},
        {"d": 16, "max_len": 20, "n_k": 5})
    cfgs = {v.name: stage.variant_config(v) for v in stage.variants}
    assert all(c.epochs == 7 and c.d == 16 and c.max_len == 20 and c.n_k == 5
               for c in cfgs.values())
    assert cfgs["full"] == stage.model and cfgs["wo_moe"].fusion == "linear"
    assert cfgs["experts_4"].n_experts == 4 and cfgs["experts_4"].fusion == "moe"
    assert cfgs["cfg_w2"].conditioning == "cfg" and cfgs["cfg_w2"].cfg_weight == 2.0
    assert stage.variants[-2].overlap_ratio == 0.2 and cfgs["overlap_20"] == stage.model
    assert stage.variants[-1].pseudo_source == "none" and cfgs["pseudo_none"] == stage.model
    assert stage.variants[0].pseudo_source == "llm"


@pytest.mark.parametrize(("raw", "match"), [
    ({"colour": 1}, "unknown fields"),
    ({"variants": ["wo_everything"]}, "unknown preset 'wo_everything'"),
    ({"variants": [{"name": "Bad-Name"}]}, "snake_case"),
    ({"variants": [{"name": "x", "n_experts": 0}]}, "variant 'x'.*n_experts=0"),
    ({"variants": [{"name": "x", "bogus": 1}]}, "unknown fields"),
    ({"variants": ["full", "full"]}, "repeat"),
    ({"variants": []}, "empty"),
    ({"threads": -1}, "threads=-1"),
    ({"variants": [{"name": "o", "overlap_ratio": 0}]}, "overlap_ratio=0"),
])
def test_bad_stage_configs_name_the_field(raw, match):
    with pytest.raises(ValueError, match=match):
        LGCDStageConfig.from_mapping(raw, {})


def test_training_rows_keep_top_nk_pseudo_items_and_overlap_share(tables):
    sequences, pseudo, _, _ = tables
    rows, skipped = training_rows(sequences, pseudo, n_k=4)
    assert not skipped
    assert sum(r.kind == "overlap" for r in rows) == 12
    assert sum(r.kind == "pseudo" for r in rows) == pseudo.height
    # nK = 2: the two best-ranked pseudo items stay; the last of them is the L_rec target
    rows2, _ = training_rows(sequences, pseudo, n_k=2)
    for r, rec in zip([r for r in rows2 if r.kind == "pseudo"], pseudo.sort("user").iter_rows(
            named=True), strict=True):
        kept = [i for i, p in zip(r.items, r.is_pseudo, strict=True) if p] + [r.target_item]
        assert sorted(kept) == sorted(rec["pseudo_items"][:2])
        assert sum(not p for p in r.is_pseudo) == sum(not p for p in rec["is_pseudo"])
    part, _ = training_rows(sequences, pseudo, n_k=4, overlap_ratio=0.25, seed=0)
    again, _ = training_rows(sequences, pseudo, n_k=4, overlap_ratio=0.25, seed=0)
    assert sum(r.kind == "overlap" for r in part) == 3
    assert [r.user for r in part] == [r.user for r in again]


def test_validation_rows_sample_and_unusable_rows_are_reported(tables):
    sequences = tables[0]
    rows, skipped = validation_rows(sequences)
    assert len(rows) == 40 and not skipped and all(r.kind == "eval" for r in rows)
    assert len(validation_rows(sequences, max_users=10)[0]) == 10
    broken = sequences.with_columns(
        pl.when(pl.col("user") == rows[0].user).then(None).otherwise(pl.col("target_item"))
        .alias("target_item"))
    rows, skipped = validation_rows(broken)
    assert len(rows) == 39 and skipped[0][0] == validation_rows(sequences)[0][0].user


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


def test_mismatched_sizes_and_empty_inputs_say_what_to_fix(tables):
    sequences, pseudo, text, _ = tables
    train, _ = training_rows(sequences, pseudo, n_k=4)
    valid, _ = validation_rows(sequences)
    with pytest.raises(LGCDDataError, match="set lgcd.d to encoder.d"):
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


def test_item_bias_starts_at_the_real_target_popularity():
    """Counts come from real overlap users (history + target), never from pseudo guesses."""

    overlap = row_from_record(dict(user="o", items=[1, 3, 2], domains=["A", "B", "A"],
                                   source_domain="A", target_domain="B", target_item=3,
                                   kind="overlap", split="train"))
    pseudo = row_from_record(dict(user="p", items=[1, 4, 2, 4], domains=["A", "B", "A", "B"],
                                  is_pseudo=[False, True, False, True], source_domain="A",
                                  kind="single", split="train"))
    counts = target_counts([overlap, pseudo], {"A": 5, "B": 6})
    assert set(counts) == {"AB"} and counts["AB"].tolist() == [0, 0, 0, 2, 0, 0]
    model = LGCD(LGCDConfig(d=16, T=10, item_bias=True), fake_encoders({"A": 5, "B": 6}, d=16))
    model.init_item_bias("AB", counts["AB"])
    bias = model.paths["AB"].item_bias.detach()
    assert bias.argmax() == 3 and abs(float(bias.mean())) < 1e-6

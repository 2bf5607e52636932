"""LGCD through the pipeline: the small demo from raw files to trained checkpoints.

One upstream run (module fixture; the LLM runs for real with the transformers backend on 4
users per direction) feeds two checks: the checkpoint round-trips into a model that scores
candidates and reproduces its validation NDCG@10; every configured variant materializes as
its own asset. Resuming a killed training is tests/pipeline/test_crash_resume.py (SIGKILL).
"""

import base64
import dataclasses
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.lgcd import CACHE_DIR, asset_name
from models import lgcd_pipeline
from models.encoder_training import EncoderTrainConfig
from models.lgcd_config import VARIANTS, LGCDConfig
from models.lgcd_data import rows_from_records
from models.lgcd_pipeline import LGCDStageConfig, VariantSpec, lgcd_from_checkpoint, score_rows
from models.lgcd_training import CandidateEvaluator
from models.sequence_encoder import DomainEncoder
from pipeline import storage
from pipeline.definitions import build_definitions
from tests.conftest import small_demo_config

MODEL = LGCDConfig(d=16, T=10, batch_size=32, overlap_batch_size=8, epochs=4, patience=4)
FULL = (VariantSpec("full"),)
SWEEP = (VariantSpec("nk_3", overrides={"n_k": 3}), VariantSpec("overlap_50", overlap_ratio=0.5))


def config(variants=FULL):
    cfg = small_demo_config(n_reviews=8000, overlap_fraction=0.5)  # ~100 overlap users, 13 valid
    gen = dataclasses.replace(cfg.generation, backend="transformers", max_users_per_direction=4,
                              max_tokens=24, chunk_size=4)
    enc = EncoderTrainConfig(d=16, n_heads=2, n_layers=1, epochs=1, patience=1, device="cpu")
    lgcd = LGCDStageConfig(model=MODEL, variants=tuple(variants), device="cpu", threads=1,
                           valid_negatives=50)
    # the evaluation stage (issue 7) rides along in full_rebuild: keep it to one seed, no sweep
    ev = dataclasses.replace(cfg.evaluation, seeds=(MODEL.seed,), sweep=None, baselines=("popularity",))
    return dataclasses.replace(cfg, generation=gen, encoder=enc, lgcd=lgcd, evaluation=ev)


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """(instance, storage root) after one full_rebuild of the small demo."""
    tmp = tmp_path_factory.mktemp("lgcd_e2e")
    (tmp / "home").mkdir()
    with dg.instance_for_test(temp_dir=str(tmp / "home")) as instance:
        defs = build_definitions(config(), tmp / "storage")
        assert defs.resolve_job_def("full_rebuild").execute_in_process(instance=instance).success
        yield instance, tmp / "storage"


def latest(instance, key):
    return instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization


def load(instance, key):
    return storage.read(latest(instance, key).metadata["path"].value)


def run_lgcd(instance, root, variants, names, raise_on_error=True):
    defs = build_definitions(config(variants), root)
    job = dg.define_asset_job("lgcd_only", selection=dg.AssetSelection.assets(*names))
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("lgcd_only").execute_in_process(instance=instance,
                                                                raise_on_error=raise_on_error)


@pytest.mark.slow
def test_demo_checkpoint_round_trips_and_scores(built):
    instance, _ = built
    meta = latest(instance, "lgcd_model").metadata
    assert meta["train_overlap_rows"].value > 0 and meta["train_pseudo_rows"].value > 0
    assert meta["resumed_from"].value == -1 and meta["steps_per_s"].value > 0
    assert meta["device"].value == "cpu" and "| 1" in meta["epochs"].value
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)",
                                     meta["training_curves"].value).group(1))
    assert png.startswith(b"\x89PNG")

    ckpt = load(instance, "lgcd_model")
    encoders = {d: DomainEncoder.from_checkpoint(c.state_dict, c.config)
                for d, c in (("A", load(instance, "sequence_encoder_a")),
                             ("B", load(instance, "sequence_encoder_b")))}
    assert ckpt.extra["encoder_versions"]["A"] == \
        latest(instance, "sequence_encoder_a").metadata["version"].value
    model = lgcd_from_checkpoint(ckpt.state_dict, ckpt.config, encoders)
    sequences = load(instance, "sequences")
    valid, _ = lgcd_pipeline.validation_rows(sequences)
    n_items = {d: e.item_table().shape[0] for d, e in encoders.items()}
    again = CandidateEvaluator(valid, n_items, 50, k=10, seed=model.cfg.seed)(model)
    assert again["ndcg@10"] == pytest.approx(meta["val_ndcg10"].value, abs=1e-9)
    assert {f"ndcg@10/{r.direction}" for r in valid} <= set(again)
    train, _ = lgcd_pipeline.training_rows(sequences, load(instance, "pseudo_sequences"), MODEL.n_k)
    assert {(r.direction, r.kind) for r in train} == {(d, k) for d in ("AB", "BA")
                                                      for k in ("overlap", "pseudo")}

    test = rows_from_records(sequences.filter(pl.col("split") == "test").iter_rows(named=True))
    candidates = np.stack([np.r_[r.target_item, [i for i in range(10) if i != r.target_item][:9]]
                           for r in test])  # (R, 10): target first, then 9 other items
    scores = score_rows(model, test, candidates)
    assert scores.shape == (len(test), 10) and np.isfinite(scores).all()


@pytest.mark.slow
def test_every_configured_variant_materializes(built):
    instance, root = built
    specs = [VariantSpec(name, name) for name in VARIANTS if name != "full"] + list(SWEEP)
    names = [asset_name(s.name) for s in specs]
    assert run_lgcd(instance, root, [VariantSpec("full"), *specs], names).success
    for spec in specs:
        meta = latest(instance, asset_name(spec.name)).metadata
        assert meta["variant"].value == spec.name and meta["epochs_run"].value >= 1
    assert load(instance, "lgcd_model_wo_moe").config["fusion"] == "linear"
    assert latest(instance, "lgcd_model_overlap_50").metadata["train_overlap_rows"].value == \
        max(1, round(latest(instance, "lgcd_model").metadata["train_overlap_rows"].value * 0.5))
    assert not list((root / CACHE_DIR[0] / CACHE_DIR[1]).iterdir())  # resume points cleaned up

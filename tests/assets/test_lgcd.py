"""LGCD through the pipeline: the tiny demo from raw files to trained checkpoints.

The session's one run of the whole graph (``tiny_pipeline`` in tests/conftest.py; the LLM runs
for real with the transformers backend on 4 users per direction) feeds two checks: the
checkpoint round-trips into a model that scores candidates and reproduces its validation
NDCG@10; every configured variant materializes as its own asset. Resuming a killed training is
tests/pipeline/test_crash_resume.py (SIGKILL).
"""

import base64
import dataclasses
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets.lgcd import CACHE_DIR, asset_name
from models.encoders.sequence import DomainEncoder
from models.lgcd import rows
from models.lgcd.checkpoint import lgcd_from_checkpoint
from models.lgcd.config import VARIANTS
from models.lgcd.data import rows_from_records
from models.lgcd.inference import score_rows
from models.lgcd.training import CandidateEvaluator
from models.lgcd.variants import VariantSpec
from pipeline import storage
from pipeline.config import load_dataset_config
from tests.conftest import latest_materialization, materialize

SWEEP = (VariantSpec("nk_3", overrides={"n_k": 3}), VariantSpec("overlap_50", overlap_ratio=0.5))


@pytest.fixture(scope="module")
def built(tiny_pipeline):
    """(instance, storage root, config) of the session's tiny run."""
    with tiny_pipeline.instance() as instance:
        yield instance, tiny_pipeline.root, load_dataset_config(tiny_pipeline.config)


def load(instance, key):
    return storage.read(latest_materialization(instance, key).metadata["path"].value)


@pytest.mark.slow
def test_demo_checkpoint_round_trips_and_scores(built):
    instance, _, cfg = built
    meta = latest_materialization(instance, "lgcd_model").metadata
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
        latest_materialization(instance, "sequence_encoder_a").metadata["version"].value
    model = lgcd_from_checkpoint(ckpt.state_dict, ckpt.config, encoders)
    sequences = load(instance, "sequences")
    valid, _ = rows.validation_rows(sequences)
    n_items = {d: e.item_table().shape[0] for d, e in encoders.items()}
    again = CandidateEvaluator(valid, n_items, 50, k=10, seed=model.cfg.seed)(model)
    assert again["ndcg@10"] == pytest.approx(meta["val_ndcg10"].value, abs=1e-9)
    assert {f"ndcg@10/{r.direction}" for r in valid} <= set(again)
    train, _ = rows.training_rows(sequences, load(instance, "pseudo_sequences"),
                                           cfg.lgcd.model.n_k)
    assert {(r.direction, r.kind) for r in train} == {(d, k) for d in ("AB", "BA")
                                                      for k in ("overlap", "pseudo")}

    test = rows_from_records(sequences.filter(pl.col("split") == "test").iter_rows(named=True))
    candidates = np.stack([np.r_[r.target_item, [i for i in range(10) if i != r.target_item][:9]]
                           for r in test])  # (R, 10): target first, then 9 other items
    scores = score_rows(model, test, candidates)
    assert scores.shape == (len(test), 10) and np.isfinite(scores).all()


@pytest.mark.slow
def test_every_configured_variant_materializes(built):
    instance, root, cfg = built
    specs = [VariantSpec(name, name) for name in VARIANTS if name != "full"] + list(SWEEP)
    names = [asset_name(s.name) for s in specs]
    more = dataclasses.replace(cfg, lgcd=dataclasses.replace(cfg.lgcd, variants=(VariantSpec("full"), *specs)))
    assert materialize(more, root, instance, dg.AssetSelection.assets(*names)).success
    for spec in specs:
        meta = latest_materialization(instance, asset_name(spec.name)).metadata
        assert meta["variant"].value == spec.name and meta["epochs_run"].value >= 1
    assert load(instance, "lgcd_model_wo_moe").config["fusion"] == "linear"
    assert latest_materialization(instance, "lgcd_model_overlap_50").metadata["train_overlap_rows"].value == \
        max(1, round(latest_materialization(instance, "lgcd_model").metadata["train_overlap_rows"].value * 0.5))
    assert not list((root / CACHE_DIR[0] / CACHE_DIR[1]).iterdir())  # resume points cleaned up


@pytest.mark.slow
def test_each_pseudo_source_trains_on_its_own_pseudo_users(built):
    """llm, retrieval (the LLM's users, their own text) and retrieval_all (every single-domain
    user) are three pseudo-sequence versions; none trains on real overlap users only."""
    instance, root, cfg = built
    specs = [VariantSpec(f"pseudo_{s}", pseudo_source=s)
             for s in ("retrieval", "retrieval_all", "none")]
    more = dataclasses.replace(cfg, lgcd=dataclasses.replace(
        cfg.lgcd, variants=(VariantSpec("full"), *specs)))
    names = [asset_name(s.name) for s in specs]
    keys = ["pseudo_sequences_retrieval", "pseudo_sequences_retrieval_all"]
    assert materialize(more, root, instance, dg.AssetSelection.assets(*names, *keys)).success
    versions = {k: latest_materialization(instance, k).metadata["version"].value
                for k in ("pseudo_sequences", *keys)}
    assert len(set(versions.values())) == 3, versions
    llm, sample, every = (load(instance, k) for k in ("pseudo_sequences", *keys))
    assert set(sample["user"]) == set(llm["user"])  # the same users as the LLM sample
    singles = load(instance, "sequences").filter(
        (pl.col("split") == "train") & (pl.col("kind") == "single"))
    assert every.height == singles.height > sample.height
    assert sample["fallback"].all() and every["pseudo_items"].list.len().min() >= 1
    rows = {s.pseudo_source: latest_materialization(instance, asset_name(s.name)).metadata for s in specs}
    overlap = latest_materialization(instance, "lgcd_model").metadata["train_overlap_rows"].value
    assert rows["none"]["train_pseudo_rows"].value == 0
    assert rows["none"]["train_overlap_rows"].value == overlap
    assert rows["retrieval"]["train_pseudo_rows"].value == sample.height
    assert rows["retrieval_all"]["train_pseudo_rows"].value == every.height
    assert load(instance, asset_name("pseudo_none")).extra["pseudo_source"] == "none"

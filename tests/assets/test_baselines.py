"""Stage 5b assets: one ranks asset per configured baseline, trained per seed on the stored lists."""

import dataclasses

import dagster as dg
import polars as pl

from assets import baselines
from models.evaluation.baselines.fit import FittedBaseline
from models.evaluation.config import BASELINES, BagConfig
from pipeline import storage
from tests.assets.evaluation_stubs import (
    HELD_OUT_USERS,
    SEEDS,
    config,
    fast_config,
    held_out_candidates,
    inline_pngs,
    stubs,
)
from tests.assets.stubs import storage as storage_resources
from tests.assets.stubs import table_asset
from tests.conftest import latest_materialization


def test_build_makes_one_described_asset_per_configured_baseline():
    built = {a.key.path[0]: a for a in baselines.build(config())}
    assert list(built) == [f"ranks_{b}" for b in BASELINES] and set(baselines.DESCRIPTIONS) == set(BASELINES)
    encoders = {dg.AssetKey("sequence_encoder_a"), dg.AssetKey("sequence_encoder_b")}
    assert encoders <= built["ranks_emcdr"].dependency_keys  # EMCDR maps pre-trained states
    assert not encoders & built["ranks_bag"].dependency_keys
    assert built["ranks_bag"].descriptions_by_key[dg.AssetKey("ranks_bag")] == baselines.DESCRIPTIONS["bag"]
    assert [a.key for a in baselines.build(fast_config("item_knn"))] == [dg.AssetKey("ranks_item_knn")]


def test_fit_markdown_has_a_row_per_seed_and_a_dash_for_untrained_models():
    fits = [(0, FittedBaseline(None, 3, 0.123456, [{}] * 4), 1.26), (1, FittedBaseline(None), 0.04)]
    assert baselines._fit_markdown(fits).splitlines() == [
        "| seed | best epoch | val NDCG@10 | validations | s |", "|---:|---:|---:|---:|---:|",
        "| 0 | 3 | 0.1235 | 4 | 1.3 |", "| 1 | 0 | – | 0 | 0.0 |"]


def test_baseline_assets_rank_every_seed_and_protocol_and_show_trained_curves(tmp_path, instance):
    base = fast_config("popularity", "bag")
    bag = BagConfig(d=8, dropout=0.0, epochs=2, patience=2)
    cfg = dataclasses.replace(base, evaluation=dataclasses.replace(base.evaluation, bag=bag))
    assets = [*stubs("sequences", "item_catalog"),
              table_asset("eval_candidates", held_out_candidates(cfg)), *baselines.build(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance).success
    for name in ("popularity", "bag"):
        meta = latest_materialization(instance, f"ranks_{name}").metadata
        ranks = storage.read(meta["path"].value)
        per_list = ranks.group_by("seed", "protocol").agg(pl.len(), pl.col("model").unique())
        assert per_list.height == len(SEEDS) * 2 and (per_list["len"] == HELD_OUT_USERS).all()
        assert per_list["model"].to_list() == [[name]] * per_list.height
        assert meta["users"].value == HELD_OUT_USERS and meta["seeds"].value == list(SEEDS)
        assert len(meta["training"].value.splitlines()) == 2 + len(SEEDS)
    bag_meta = latest_materialization(instance, "ranks_bag").metadata
    pngs = inline_pngs(bag_meta["training_curves"].value)
    assert len(pngs) == len(SEEDS) and all(p.startswith(b"\x89PNG") for p in pngs)
    assert "training_curves" not in latest_materialization(instance, "ranks_popularity").metadata

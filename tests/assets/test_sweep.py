"""The Figure 3 asset: ranks of each LGCD sweep point's model on the first seed's lists.

The sweep models are untrained LGCDs of each point's configuration (the LGCD stage's own
tests cover training): ranking, not learning, is what this asset does.
"""

import dagster as dg
import polars as pl
import torch

from assets import lgcd, sweep
from models.encoders.sequence import encoders_from_checkpoints
from models.evaluation.plan import sweep_points
from models.lgcd.model import LGCD
from pipeline import storage
from pipeline.storage import Checkpoint
from tests.assets.evaluation_stubs import (
    HELD_OUT_USERS,
    config,
    encoder_checkpoints,
    fast_config,
    held_out_candidates,
    stubs,
)
from tests.assets.stubs import storage as storage_resources
from tests.assets.stubs import table_asset
from tests.conftest import latest_materialization


def untrained_sweep_models(cfg) -> dict[str, Checkpoint]:
    """Asset name -> an untrained LGCD of that sweep point's configuration, encoders left out."""
    models = {}
    for point in sweep_points(cfg.lgcd, cfg.evaluation.sweep):
        torch.manual_seed(0)
        net = LGCD(cfg.lgcd.variant_config(point.spec), encoders_from_checkpoints(encoder_checkpoints()))
        own = {k: v for k, v in net.state_dict().items() if not k.startswith("encoders.")}
        models[lgcd.asset_name(point.spec.name)] = Checkpoint(own, net.cfg.to_dict())
    return models


def test_no_sweep_section_builds_no_asset():
    assert sweep.build(fast_config()) == []


def test_ranks_sweep_reads_each_distinct_sweep_model_once():
    [asset] = sweep.build(config())
    # n_k 2 and T 6 are the base values: with other epochs both share one base model
    models = {"lgcd_model_sweep_n_k_1", "lgcd_model_sweep_base", "lgcd_model_sweep_lam_0p5"}
    assert {k.path[0] for k in asset.dependency_keys} == models | {
        "sequences", "eval_candidates", "sequence_encoder_a", "sequence_encoder_b"}


def test_ranks_sweep_ranks_every_point_on_the_first_seed(tmp_path, instance):
    cfg = config()
    assets = [*stubs("sequences", "sequence_encoder_a", "sequence_encoder_b"),
              table_asset("eval_candidates", held_out_candidates(cfg)),
              *(table_asset(name, ckpt) for name, ckpt in untrained_sweep_models(cfg).items()),
              *sweep.build(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance).success
    meta = latest_materialization(instance, sweep.ASSET).metadata
    assert (meta["points"].value, meta["seed"].value) == (4, cfg.evaluation.seeds[0])
    table = storage.read(meta["path"].value)
    assert set(table["seed"]) == {cfg.evaluation.seeds[0]} and set(table["model"]) == {"lgcd_sweep"}
    per_point = table.group_by("param", "value", "protocol").len()
    assert per_point.height == 4 * 2 and (per_point["len"] == HELD_OUT_USERS).all()

    def point(param: str, value: float) -> pl.DataFrame:
        return table.filter((pl.col("param") == param) & (pl.col("value") == value)).drop(
            "param", "value")

    # n_k=2 and T=6 are both the base model's point: one model, one seed, the same ranks
    assert point("n_k", 2.0).equals(point("T", 6.0))
    assert "| n_k | 1 |" in meta["figure3"].value and "| lam | 0.5 |" in meta["figure3"].value

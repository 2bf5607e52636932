"""Stage 5 assets: candidate lists per seed and protocol, ranks metadata, the combined evaluation.

Upstream stages and LGCD are stand-ins (tests/assets/evaluation_stubs.py): this exercises
only the evaluation graph.
"""

import dagster as dg
import numpy as np
import polars as pl

from assets import baselines, evaluation, report
from models.evaluation.config import BASELINES
from pipeline import storage
from tests.assets.evaluation_stubs import (
    HELD_OUT_USERS,
    N_ITEMS,
    SEEDS,
    config,
    fake_lgcd_ranks,
    fast_config,
    held_out_candidates,
    ranks_of_two_models,
    split_tables,
    stubs,
)
from tests.assets.stage_runs import failure_messages
from tests.assets.stubs import storage as storage_resources
from tests.assets.stubs import table_asset
from tests.conftest import latest_materialization


def test_rank_asset_names_are_the_baselines_then_each_lgcd_model():
    cfg = config()
    assert evaluation.rank_asset_names(cfg) == [f"ranks_{b}" for b in BASELINES] + [
        "ranks_lgcd", "ranks_lgcd_wo_diffusion"]
    # one ranks asset per model, fed by that model's trained replica of every seed
    ranks_lgcd = next(a for a in evaluation.build(cfg) if a.key == dg.AssetKey("ranks_lgcd"))
    assert {"lgcd_model", "lgcd_model_full_seed1"} <= {k.path[0] for k in ranks_lgcd.dependency_keys}


def test_rank_metadata_has_the_primary_test_means_and_a_table_per_protocol():
    cfg = fast_config()
    ranks = ranks_of_two_models(cfg)["ranks_lgcd"]
    meta = evaluation.rank_metadata(ranks, cfg, variant="full")
    assert meta["users"] == HELD_OUT_USERS and meta["variant"] == "full"
    assert meta["seeds"].value == list(SEEDS) and meta["protocols"].value == ["all", "target"]
    test = ranks.filter((pl.col("split") == "test") & (pl.col("protocol") == "all"))
    hr10 = np.mean([(part["rank"] < 10).mean() for _, part in test.group_by("seed")])
    assert meta["test_hr@10"] == round(hr10, 4)  # the primary protocol's, mean over seeds
    tables = meta["test_metrics"].value
    assert tables.index("**Protocol `all`**") < tables.index("**Protocol `target`**")
    assert tables.count("| lgcd |") == 2
    valid_only = evaluation.rank_metadata(ranks.filter(pl.col("split") == "valid"), cfg)
    assert "test_hr@10" not in valid_only and "test_ndcg@10" not in valid_only


def test_eval_candidates_stores_every_seed_and_protocol_primary_first(tmp_path, instance):
    cfg = fast_config()
    assets = [*stubs("sequences", "item_catalog"), evaluation._candidates_asset(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance).success
    meta = latest_materialization(instance, "eval_candidates").metadata
    assert storage.read(meta["path"].value).equals(held_out_candidates(cfg))
    assert meta["protocols"].value.splitlines()[0].startswith("* `all` (primary): 1 ground truth")
    assert meta["seeds"].value == list(SEEDS) and meta["n_negatives"].value == 40


def test_eval_candidates_refuses_sequences_without_held_out_users(tmp_path, instance):
    sequences, catalog, _ = split_tables()
    assets = [table_asset("sequences", sequences.filter(pl.col("split") == "train")),
              table_asset("item_catalog", catalog), evaluation._candidates_asset(fast_config())]
    result = dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance,
                            raise_on_error=False)
    assert not result.success
    assert any("sequences has no valid or test users to evaluate" in m
               for m in failure_messages(result))


def test_evaluation_stacks_every_ranks_asset_with_its_metrics(tmp_path, instance):
    cfg = fast_config("popularity")
    ranks = ranks_of_two_models(cfg)
    assets = [*(table_asset(name, table) for name, table in ranks.items()),
              evaluation._evaluation_asset(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance).success
    meta = latest_materialization(instance, "evaluation").metadata
    stored = storage.read(meta["path"].value)
    assert stored["ranks"].equals(pl.concat([ranks["ranks_popularity"], ranks["ranks_lgcd"]]))
    assert set(stored["metrics"]["model"]) == {"popularity", "lgcd"}
    assert meta["models"].value == ["popularity", "lgcd"]
    for split in ("test", "valid"):
        assert meta[split].value.count("**Protocol `") == 2 and "| popularity |" in meta[split].value


def test_both_protocols_from_the_same_models_and_one_table1_each(tmp_path, instance):
    """Fast: the evaluation graph without training (popularity, item-KNN, a fixed scorer)."""
    cfg = fast_config("popularity", "item_knn")
    assert cfg.evaluation.protocols == ("all", "target")  # the paper's first, then LLMCDSR's
    assets = [*stubs(), evaluation._candidates_asset(cfg), *baselines.build(cfg),
              fake_lgcd_ranks(cfg), evaluation._evaluation_asset(cfg), *report.build(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path / "storage"),
                          instance=instance).success

    def latest(key):
        return latest_materialization(instance, key)

    # every held-out user has one list per seed and protocol, the primary protocol first
    cands = storage.read(latest("eval_candidates").metadata["path"].value)
    assert cands["protocol"].unique(maintain_order=True).to_list() == ["all", "target"]
    per_user = cands.group_by("seed", "split", "user").agg(pl.col("protocol").n_unique())
    assert (per_user["protocol"] == 2).all() and per_user.height == HELD_OUT_USERS * len(SEEDS)
    effective = latest("eval_candidates").metadata["effective_negatives"].value
    assert "| all | test | A |" in effective and "| target | test | A |" in effective

    # one popularity model per seed, ranked under both protocols: "target" (here the whole
    # target catalog, 40 negatives > its size) holds every item of the "all" list's target part
    ranks = storage.read(latest("ranks_popularity").metadata["path"].value)
    wide = ranks.pivot("protocol", index=["seed", "split", "user", "target_domain"],
                       values=["rank", "n_candidates"])
    assert wide.height == per_user.height
    assert (wide["n_candidates_target"] == wide["target_domain"].replace_strict(
        N_ITEMS, return_dtype=pl.Int32)).all()
    assert (wide["n_candidates_all"] <= wide["n_candidates_target"]).all()
    assert (wide["n_candidates_all"] < wide["n_candidates_target"]).any()
    # same scores, a superset of competitors: the truth never ranks better under "target"
    assert (wide["rank_all"] <= wide["rank_target"]).all()

    meta = latest("report").metadata
    assert meta["protocols"].value == ["all", "target"]
    table1, table1_target = meta["table1"].value, meta["table1_target"].value
    assert table1.startswith("**Protocol `all`**: 1 ground truth + 40 negatives sampled from all")
    assert "effective candidates per test user: Food" in table1
    assert table1_target.startswith("**Protocol `target`**: 1 ground truth + 40 negatives sampled "
                                    "from the target domain")
    assert "Food 24.0, Kitchen 30.0" in table1_target  # the whole (small) target catalogs
    for table in (table1, table1_target):
        assert "| model | Food HR@5 | Food HR@10 |" in table
        assert "| popularity |" in table and "| item_knn |" in table and "| lgcd |" in table
    assert "table1_all" not in meta  # the primary protocol is ``table1``
    assert "under protocol `all`" in meta["significance"].value
    assert meta["paper_comparison"].value.startswith("**Protocol `all`**")
    tables = storage.read(meta["path"].value)
    for name in ("results", "summary"):
        assert set(tables[name]["protocol"]) == {"all", "target"}
    summary = tables["summary"]
    assert summary.group_by("model", "protocol", "split", "target_domain").len()["len"].max() == 1
    assert set(tables["significance"]["protocol"]) == {"all"}

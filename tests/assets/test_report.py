"""Stage 6 asset: Tables 1 and 3 per protocol, significance, the paper's numbers and Figure 3."""

import dataclasses

import dagster as dg
import polars as pl
import pytest

from assets import baselines, evaluation, lgcd, report, sweep
from models.evaluation.ranking import metric_rows
from models.report.tables import domain_names, summarize
from pipeline import storage
from tests.assets.evaluation_stubs import (
    SEEDS,
    config,
    fast_config,
    inline_pngs,
    ranks_of_two_models,
    stubs,
)
from tests.assets.stubs import storage as storage_resources
from tests.assets.stubs import table_asset
from tests.conftest import latest_materialization


def with_protocols(cfg, *protocols: str):
    return dataclasses.replace(cfg, evaluation=dataclasses.replace(cfg.evaluation,
                                                                   protocols=protocols))


def test_tables_meta_has_table1_per_protocol_and_the_rest_for_the_primary():
    cfg = fast_config("popularity")
    ranks = pl.concat(ranks_of_two_models(cfg).values())
    names = domain_names(cfg.domain_categories())
    meta = report._tables_meta(summarize(ranks), ["popularity", "lgcd"], ["popularity", "lgcd"],
                               ["lgcd"], cfg.evaluation, names)
    assert list(meta) == ["table1", "table1_target", "table1_all_cutoffs", "table3", "metric_bars"]
    assert meta["table1"].value.startswith("**Protocol `all`**")
    assert meta["table1_target"].value.startswith("**Protocol `target`**")
    assert "| popularity |" in meta["table1"].value and "| popularity |" not in meta["table3"].value
    assert "| lgcd |" in meta["table3"].value and "Food HR@1 |" in meta["table1_all_cutoffs"].value
    [png] = inline_pngs(meta["metric_bars"].value)
    assert png.startswith(b"\x89PNG")


@pytest.mark.parametrize("protocols", [("all", "target"), ("target",)])
def test_report_over_a_stored_evaluation(tmp_path, instance, protocols):
    """The paper comparison needs the paper's protocol, ``all``; the rest follows the primary."""
    cfg = with_protocols(fast_config("popularity"), *protocols)
    ranks = pl.concat(ranks_of_two_models(cfg).values())
    stored_evaluation = {"ranks": ranks, "metrics": metric_rows(ranks)}
    assets = [table_asset("evaluation", stored_evaluation), *report.build(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path), instance=instance).success
    meta = latest_materialization(instance, "report").metadata
    primary = protocols[0]
    assert meta["table1"].value.startswith(f"**Protocol `{primary}`**")
    assert [k for k in meta if k.startswith("table1_") and k != "table1_all_cutoffs"] == [
        f"table1_{p}" for p in protocols[1:]]
    # LGCD against the best baseline, under the table it speaks for
    assert "**lgcd** on the 10 pooled test users" in meta["table1"].value
    assert f"under protocol `{primary}`" in meta["significance"].value
    assert "figure3" not in meta  # no sweep configured
    tables = storage.read(meta["path"].value)
    assert set(tables) == {"results", "summary", "significance"} | (
        {"paper_comparison"} if "all" in protocols else set())
    assert ("paper_comparison" in meta) == ("all" in protocols)
    assert tables["summary"]["seeds"].max() == len(SEEDS)


@pytest.mark.slow
def test_report_materializes_with_both_tables(tmp_path, instance):
    cfg = config()
    assets = [*stubs(), *lgcd.build(cfg), *evaluation.build(cfg), *baselines.build(cfg),
              *sweep.build(cfg), *report.build(cfg)]
    assert dg.materialize(assets, resources=storage_resources(tmp_path / "storage"),
                          instance=instance).success

    def latest(key):
        return latest_materialization(instance, key)

    # seed replicas and sweep points were trained as LGCD assets of their own
    for name in ("lgcd_model_full_seed1", "lgcd_model_wo_diffusion_seed1", "lgcd_model_sweep_n_k_1",
                 "lgcd_model_sweep_lam_0p5"):
        assert latest(name) is not None
    assert latest("lgcd_model_full_seed1").metadata["variant"].value == "full_seed1"

    everything = storage.read(latest("evaluation").metadata["path"].value)
    ranks = everything["ranks"]
    models = set(ranks["model"])
    assert models == {"popularity", "target_popularity", "item_knn", "bag", "sasrec", "gru4rec",
                      "emcdr", "lgcd", "lgcd_wo_diffusion"}
    # identical lists: every model ranks the same users on lists of the same size per seed
    lists = ranks.group_by("seed", "protocol", "split", "user").agg(
        pl.col("n_candidates").n_unique().alias("k"), pl.len().alias("models"))
    assert (lists["k"] == 1).all() and (lists["models"] == len(models)).all()
    assert (ranks["rank"] < ranks["n_candidates"]).all() and (ranks["rank"] >= 0).all()
    assert sorted(ranks["seed"].unique()) == list(SEEDS)

    meta = latest("report").metadata
    table1, table3 = meta["table1"].value, meta["table3"].value
    assert "| model | Food HR@5 | Food HR@10 | Food NDCG@5 | Food NDCG@10 |" in table1
    assert "| sasrec |" in table1 and "| lgcd |" in table1 and "±" in table1
    assert table1.startswith("**Protocol `all`**") and "| sasrec |" in meta["table1_target"].value
    assert "| lgcd_wo_diffusion |" in table3 and "Kitchen NDCG@5" in table3
    assert "| Table 1 | lgcd (LGCD) | Food | HR@5 |" in meta["paper_comparison"].value
    assert "permutation test" in meta["significance"].value
    assert "| n_k | 1 |" in meta["figure3"].value
    for key in ("metric_bars", "figure3_plot"):
        [png] = inline_pngs(meta[key].value)
        assert png.startswith(b"\x89PNG")
    tables = storage.read(latest("report").metadata["path"].value)
    assert set(tables) == {"results", "summary", "significance", "paper_comparison", "sweep"}
    assert tables["summary"].filter(pl.col("model") == "lgcd")["seeds"].max() == len(SEEDS)

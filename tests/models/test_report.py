"""Report tables from a hand-made rank table."""

import numpy as np
import polars as pl
import pytest

from models.evaluation import RANK_SCHEMA
from models.lgcd_pipeline import VariantSpec
from models.paper_results import TABLE1_FOOD_KITCHEN
from models.report import (
    best_baseline,
    domain_names,
    is_food_kitchen,
    paired_user_ndcg,
    paper_comparison,
    paper_comparison_markdown,
    significance,
    summarize,
    sweep_markdown,
    sweep_metrics,
    table1_markdown,
    table3_markdown,
    table3_models,
)
from models.report_plots import metric_bars_png, sensitivity_png

NAMES = {"A": "Food", "B": "Kitchen"}


def ranks_table() -> pl.DataFrame:
    """lgcd ranks everyone first; sasrec ranks 9 on seed 0 and 0 on seed 1; pop always 50."""
    rows = []
    for seed in (0, 1):
        for u in range(8):
            dom = "A" if u < 4 else "B"
            for model, rank in (("lgcd", 0), ("sasrec", 9 if seed == 0 else 0), ("popularity", 50)):
                rows.append({"model": model, "seed": seed, "split": "test", "user": f"u{u}",
                             "target_domain": dom, "rank": rank, "n_candidates": 100})
    return pl.DataFrame(rows, schema=RANK_SCHEMA)


def test_summary_means_and_stds_over_seeds():
    s = summarize(ranks_table())
    row = s.filter((pl.col("model") == "sasrec") & (pl.col("target_domain") == "A")).row(0, named=True)
    assert row["seeds"] == 2 and row["users"] == 4
    assert row["hr@10_mean"] == 1.0 and row["hr@10_std"] == 0.0
    assert row["hr@5_mean"] == 0.5 and row["hr@5_std"] == pytest.approx(np.std([0, 1], ddof=1))
    assert row["ndcg@10_mean"] == pytest.approx((1 / np.log2(11) + 1) / 2)


def test_table1_layout_bold_best_and_underlined_second():
    md = table1_markdown(summarize(ranks_table()), ["popularity", "sasrec", "lgcd"], NAMES)
    lines = md.splitlines()
    assert lines[0].startswith("| model | Food HR@5 | Food HR@10 | Food NDCG@5 | Food NDCG@10 | Kitchen HR@5")
    assert len(lines) == 5
    lgcd = next(line for line in lines if line.startswith("| lgcd"))
    assert "**1.0000 ± 0.0000**" in lgcd
    sasrec = next(line for line in lines if line.startswith("| sasrec"))
    assert "<u>0.5000 ± 0.7071</u>" in sasrec


def test_table3_has_hr5_and_ndcg5_per_domain():
    md = table3_markdown(summarize(ranks_table()), ["lgcd"], NAMES)
    assert md.splitlines()[0] == ("| model | Food HR@5 | Food NDCG@5 | Kitchen HR@5 | "
                                  "Kitchen NDCG@5 |")


def test_paper_comparison_differences():
    cmp = paper_comparison(summarize(ranks_table()))
    row = cmp.filter((pl.col("model") == "sasrec") & (pl.col("metric") == "hr@10")
                     & (pl.col("target_domain") == "A")).row(0, named=True)
    assert row["paper"] == TABLE1_FOOD_KITCHEN["SASRec"][1] == 0.29
    assert row["diff"] == pytest.approx(1.0 - 0.29)
    assert "popularity" not in cmp["model"].to_list()  # the paper has no such row
    assert "| Table 1 | sasrec (SASRec) | Food | HR@10 |" in paper_comparison_markdown(cmp, NAMES)


def test_best_baseline_and_paired_significance():
    ranks = ranks_table()
    s = summarize(ranks)
    assert best_baseline(s, ["popularity", "sasrec"]) == "sasrec"
    a, b = paired_user_ndcg(ranks, "lgcd", "sasrec", "all")
    assert len(a) == 8 and (a == 1.0).all()  # per user, averaged over both seeds
    assert b == pytest.approx(np.full(8, (1 / np.log2(11) + 1) / 2))
    tests = significance(ranks, "lgcd", "sasrec", permutations=500)
    assert set(tests) == {"A", "B", "all"} and tests["all"].p_value < 0.01


def test_sweep_points_and_plots():
    base = ranks_table().filter(pl.col("model") == "lgcd")
    sweep = pl.concat([base.with_columns(param=pl.lit(p), value=pl.lit(v), rank=pl.lit(r))
                       for p, v, r in (("n_k", 5.0, 3), ("n_k", 10.0, 0), ("T", 50.0, 7),
                                       ("lam", 0.3, 1))])
    points = sweep_metrics(sweep)
    assert points.filter((pl.col("param") == "n_k") & (pl.col("value") == 5.0)
                         & (pl.col("target_domain") == "A"))["hr@5"][0] == 1.0
    assert "| T | 50 |" in sweep_markdown(points, NAMES)
    for png in (sensitivity_png(points, NAMES),
                metric_bars_png(summarize(ranks_table()), ["lgcd", "sasrec"], NAMES)):
        assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) < 100_000


def test_domain_names():
    cats = ("Grocery_and_Gourmet_Food", "Home_and_Kitchen")
    assert domain_names(cats) == NAMES and is_food_kitchen(cats)
    assert not is_food_kitchen(("Movies_and_TV", "Books"))


def test_published_tables_are_reproduced_verbatim():
    from models.report import paper_tables_markdown

    md = paper_tables_markdown(NAMES)
    assert "| LGCD | 0.2800 | 0.4000 | 0.1805 | 0.2190 | 0.3093 | 0.3893 | 0.2140 | 0.2397 |" in md
    assert "| w/o Overlap Diffusion | 0.0900 | 0.0584 | 0.0549 | 0.0353 |" in md


def test_table3_rows_are_ablation_presets_whose_overrides_are_only_a_training_budget():
    variants = (VariantSpec("full"), VariantSpec("wo_moe", "wo_moe"),
                VariantSpec("wo_overlap_cyclic", "wo_overlap_cyclic", {"epochs": 8, "patience": 3}),
                VariantSpec("wo_diffusion_t50", "wo_diffusion", {"T": 50}),
                VariantSpec("cond_linear", "cond_linear"))
    assert table3_models(variants) == ["lgcd", "lgcd_wo_moe", "lgcd_wo_overlap_cyclic"]

"""Report tables from a hand-made rank table."""

import numpy as np
import polars as pl
import pytest

from models.evaluation.ranking import RANK_SCHEMA
from models.lgcd.variants import VariantSpec
from models.report.comparison import paper_comparison
from models.report.significance import significance
from models.report.tables import (
    domain_names,
    floor_warnings,
    is_food_kitchen,
    protocol_heading,
    pseudo_source_models,
    pseudo_sources_markdown,
    summarize,
    table1_markdown,
    table1_section,
    table3_markdown,
    table3_models,
)

NAMES = {"A": "Food", "B": "Kitchen"}


def ranks_table(protocol: str = "all") -> pl.DataFrame:
    """lgcd ranks everyone first; sasrec ranks 9 on seed 0 and 0 on seed 1; pop always 50."""
    rows = []
    for seed in (0, 1):
        for u in range(8):
            dom = "A" if u < 4 else "B"
            for model, rank in (("lgcd", 0), ("sasrec", 9 if seed == 0 else 0), ("popularity", 50)):
                rows.append({"model": model, "seed": seed, "protocol": protocol, "split": "test",
                             "user": f"u{u}", "target_domain": dom, "rank": rank,
                             "n_candidates": 100})
    return pl.DataFrame(rows, schema=RANK_SCHEMA)


def floor_table(sasrec_rank: int, floors: dict[str, int]) -> pl.DataFrame:
    """Food (A) users only; every model ranks each user at the given rank on both seeds."""
    rows = [{"model": model, "seed": seed, "protocol": "all", "split": "test", "user": f"u{u}",
             "target_domain": "A", "rank": rank, "n_candidates": 100}
            for seed in (0, 1) for u in range(4)
            for model, rank in (("sasrec", sasrec_rank), ("lgcd", 0), ("popularity", 90),
                                *floors.items())]
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


def test_a_learned_model_below_a_floor_gets_a_warning_row_beneath_it():
    # sasrec at rank 5 (NDCG@10 0.356) below target_popularity at rank 2 (0.5); HR@10 ties
    summary = summarize(floor_table(5, {"target_popularity": 2}))
    models = ["popularity", "target_popularity", "sasrec", "lgcd"]
    lines = table1_markdown(summary, models, NAMES).splitlines()
    at = next(i for i, line in enumerate(lines) if line.startswith("| sasrec |"))
    assert lines[at + 1] == ("| ⚠ sasrec | below floor target_popularity on Food NDCG@10 "
                             "(0.3562 < 0.5000): undertrained or misaligned |" + " |" * 7)
    assert len(lines) == 2 + len(models) + 1  # lgcd (rank 0) and popularity (not learned): none
    assert lines[at + 1].count("|") == lines[at].count("|")


def test_no_warning_above_the_floors_or_without_them():
    models = ["target_popularity", "bag", "sasrec", "gru4rec", "lgcd"]
    above = summarize(floor_table(1, {"target_popularity": 3, "bag": 2}))
    assert floor_warnings(above, models, NAMES) == {}
    assert "⚠" not in table1_markdown(above, models, NAMES)
    no_floors = summarize(floor_table(60, {}))
    assert floor_warnings(no_floors, ["popularity", "sasrec", "lgcd"], NAMES) == {}
    assert "⚠" not in table1_markdown(no_floors, ["popularity", "sasrec", "lgcd"], NAMES)


def test_floors_checked_per_model_kind():
    # bag (rank 4) is below target_popularity (rank 3) and is checked only against it;
    # sasrec (rank 50) is below both floors on both metrics: one row per floor
    warnings = floor_warnings(summarize(floor_table(50, {"target_popularity": 3, "bag": 4})),
                              ["target_popularity", "bag", "sasrec", "lgcd"], NAMES)
    assert set(warnings) == {"bag", "sasrec"}
    assert len(warnings["bag"]) == 1 and warnings["bag"][0].startswith(
        "below floor target_popularity on Food NDCG@10")
    assert [w.split(" on ")[0] for w in warnings["sasrec"]] == [
        "below floor target_popularity", "below floor bag"]
    assert "Food HR@10 (0.0000 < 1.0000), Food NDCG@10" in warnings["sasrec"][0]


def test_each_protocol_has_its_own_table_and_heading():
    ranks = pl.concat([ranks_table("all").with_columns(n_candidates=pl.lit(30, pl.Int32)),
                       ranks_table("target").with_columns(
                           rank=pl.when(pl.col("model") == "lgcd").then(pl.lit(20, pl.Int32))
                           .otherwise("rank"))])
    summary = summarize(ranks)
    assert summary["protocol"].unique(maintain_order=True).to_list() == ["all", "target"]
    primary = table1_markdown(summary, ["sasrec", "lgcd"], NAMES)
    assert primary == table1_markdown(summary, ["sasrec", "lgcd"], NAMES, protocol="all")
    lgcd_all = next(x for x in primary.splitlines() if x.startswith("| lgcd |"))
    target = table1_markdown(summary, ["sasrec", "lgcd"], NAMES, protocol="target")
    lgcd_target = next(x for x in target.splitlines() if x.startswith("| lgcd |"))
    assert "**1.0000 ± 0.0000**" in lgcd_all and "0.0000 ± 0.0000" in lgcd_target
    heading = protocol_heading(summary, "all", 999, NAMES)
    assert heading.startswith("**Protocol `all`**: 1 ground truth + 999 negatives sampled from all")
    assert "effective candidates per test user: Food 30.0, Kitchen 30.0" in heading
    assert "Food 100.0" in protocol_heading(summary, "target", 999, NAMES)
    assert table1_section(summary, ["sasrec", "lgcd"], NAMES, "target", 999) == (
        f"{protocol_heading(summary, 'target', 999, NAMES)}\n\n{target}")
    # significance and the paper comparison read one protocol each
    tests = significance(ranks, "lgcd", "sasrec", permutations=200, protocol="target")
    assert tests["all"].mean_a == 0.0
    cmp = paper_comparison(summary)
    lgcd = cmp.filter((pl.col("model") == "lgcd") & (pl.col("metric") == "hr@10"))
    assert (lgcd["ours"] == 1.0).all()  # the "all" protocol's numbers, not "target"'s
    assert paper_comparison(summarize(ranks_table("target"))).is_empty()


def test_table3_has_hr5_and_ndcg5_per_domain():
    md = table3_markdown(summarize(ranks_table()), ["lgcd"], NAMES)
    assert md.splitlines()[0] == ("| model | Food HR@5 | Food NDCG@5 | Kitchen HR@5 | "
                                  "Kitchen NDCG@5 |")


def test_domain_names():
    cats = ("Grocery_and_Gourmet_Food", "Home_and_Kitchen")
    assert domain_names(cats) == NAMES and is_food_kitchen(cats)
    assert not is_food_kitchen(("Movies_and_TV", "Books"))


def test_table3_rows_are_ablation_presets_whose_overrides_are_only_a_training_budget():
    variants = (VariantSpec("full"), VariantSpec("wo_moe", "wo_moe"),
                VariantSpec("wo_overlap_cyclic", "wo_overlap_cyclic", {"epochs": 8, "patience": 3}),
                VariantSpec("wo_diffusion_t50", "wo_diffusion", {"T": 50}),
                VariantSpec("cond_linear", "cond_linear"))
    assert table3_models(variants) == ["lgcd", "lgcd_wo_moe", "lgcd_wo_overlap_cyclic"]


def test_pseudo_source_table_lists_lgcd_by_source_beside_the_paper():
    variants = (VariantSpec("full"), VariantSpec("wo_moe", "wo_moe"),
                VariantSpec("pseudo_retrieval", pseudo_source="retrieval"),
                VariantSpec("pseudo_none", pseudo_source="none", overrides={"epochs": 5}),
                VariantSpec("pseudo_none_t50", pseudo_source="none", overrides={"T": 50}))
    models = pseudo_source_models(variants)
    assert models == ["lgcd", "lgcd_pseudo_retrieval", "lgcd_pseudo_none"]
    assert table3_models(variants) == ["lgcd", "lgcd_wo_moe"]  # not in Table 3 as well
    assert pseudo_source_models((VariantSpec("full"), VariantSpec("wo_moe", "wo_moe"))) == []
    ranks = ranks_table()
    ranks = pl.concat([ranks, ranks.filter(pl.col("model") == "sasrec")
                       .with_columns(model=pl.lit("lgcd_pseudo_none"))])
    sources = {"lgcd": "llm", "lgcd_pseudo_none": "none"}
    md = pseudo_sources_markdown(summarize(ranks), ["lgcd", "lgcd_pseudo_none"], sources, NAMES,
                                 with_paper=True).splitlines()
    assert md[0].startswith("| model | Food HR@5 | Food HR@10 | Food NDCG@5 | Food NDCG@10 |")
    assert md[2].startswith("| lgcd (llm) | **1.0000 ± 0.0000** |")
    assert md[3].startswith("| lgcd_pseudo_none (none) |")
    assert md[4] == ("| *paper: LGCD (llm)* | *0.2800* | *0.4000* | *0.1805* | *0.2190* | "
                     "*0.3093* | *0.3893* | *0.2140* | *0.2397* |")
    with pytest.raises(ValueError, match="pseudo_source"):
        VariantSpec("x", pseudo_source="gpt")

"""Paired significance against every baseline, its table and the verdict under Table 1."""

import numpy as np
import polars as pl
import pytest

from models.report.significance import (
    paired_user_ndcg,
    significance,
    significance_markdown,
    significance_table,
    significance_verdict,
    significance_vs,
)
from models.report.tables import best_baseline, summarize
from tests.models.report.test_tables import NAMES, ranks_table


def test_best_baseline_and_paired_significance():
    ranks = ranks_table()
    s = summarize(ranks)
    assert best_baseline(s, ["popularity", "sasrec"]) == "sasrec"
    a, b = paired_user_ndcg(ranks, "lgcd", "sasrec", "all")
    assert len(a) == 8 and (a == 1.0).all()  # per user, averaged over both seeds
    assert b == pytest.approx(np.full(8, (1 / np.log2(11) + 1) / 2))
    tests = significance(ranks, "lgcd", "sasrec", permutations=500)
    assert set(tests) == {"A", "B", "all"} and tests["all"].p_value < 0.01


def test_significance_against_every_baseline_and_the_verdict_under_table1():
    ranks = ranks_table()
    twin = ranks.filter(pl.col("model") == "sasrec").with_columns(model=pl.lit("sasrec_twin"))
    ranks = pl.concat([ranks, twin])
    tests = significance_vs(ranks, "sasrec", ["lgcd", "popularity", "sasrec_twin"],
                            permutations=2000)
    assert set(tests) == {"lgcd", "popularity", "sasrec_twin"}
    assert tests["popularity"]["all"].diff > 0 and tests["popularity"]["all"].p_value < 0.01
    assert tests["lgcd"]["all"].diff < 0 and tests["lgcd"]["all"].p_value < 0.01
    assert tests["sasrec_twin"]["all"].diff == 0 and tests["sasrec_twin"]["all"].p_value == 1.0
    verdict = significance_verdict(tests, "sasrec")
    assert verdict.startswith("**sasrec** on the 8 pooled test users")
    assert "significantly better than popularity (p=" in verdict
    assert "significantly worse than lgcd (p=" in verdict
    assert "not significantly different from sasrec_twin (p=1)" in verdict
    table = significance_markdown(tests, "sasrec", "lgcd", NAMES, "all").splitlines()
    rows = [line for line in table if line.startswith("| ") and "---" not in line][1:]
    assert len(rows) == 9  # 3 baselines x (Food, Kitchen, both)
    assert rows[0].startswith("| lgcd | Food | 4 |")  # the best baseline comes first
    assert significance_verdict({}, "sasrec") == ""


def test_significance_table_has_a_row_per_baseline_and_domain():
    tests = significance_vs(ranks_table(), "lgcd", ["sasrec", "popularity"], permutations=200)
    table = significance_table(tests, "lgcd", "all")
    assert table.height == 6 and set(table["baseline"]) == {"sasrec", "popularity"}
    assert (table["model"] == "lgcd").all() and (table["protocol"] == "all").all()
    assert (table["diff"] > 0).all()  # 4 users a domain: only the pooled 8 can be significant
    assert table.filter(pl.col("target_domain") == "all")["p_value"].max() < 0.05
    empty = significance_table({}, "lgcd", "all")
    assert empty.is_empty() and empty.schema == pl.Schema({"model": pl.String, "p_value": pl.Float64})

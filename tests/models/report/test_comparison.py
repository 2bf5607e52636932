"""Our numbers beside the paper's published Food-Kitchen tables."""

import polars as pl
import pytest

from models.report.comparison import paper_comparison, paper_comparison_markdown, paper_tables_markdown
from models.report.paper import TABLE1_FOOD_KITCHEN
from models.report.tables import summarize
from tests.models.report.test_tables import NAMES, ranks_table


def test_paper_comparison_differences():
    cmp = paper_comparison(summarize(ranks_table()))
    row = cmp.filter((pl.col("model") == "sasrec") & (pl.col("metric") == "hr@10")
                     & (pl.col("target_domain") == "A")).row(0, named=True)
    assert row["paper"] == TABLE1_FOOD_KITCHEN["SASRec"][1] == 0.29
    assert row["diff"] == pytest.approx(1.0 - 0.29)
    assert "popularity" not in cmp["model"].to_list()  # the paper has no such row
    assert "| Table 1 | sasrec (SASRec) | Food | HR@10 |" in paper_comparison_markdown(cmp, NAMES)


def test_published_tables_are_reproduced_verbatim():
    md = paper_tables_markdown(NAMES)
    assert "| LGCD | 0.2800 | 0.4000 | 0.1805 | 0.2190 | 0.3093 | 0.3893 | 0.2140 | 0.2397 |" in md
    assert "| w/o Overlap Diffusion | 0.0900 | 0.0584 | 0.0549 | 0.0353 |" in md

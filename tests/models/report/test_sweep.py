"""Figure 3 points and table from a hand-made sweep of ranks."""

import polars as pl

from models.report.sweep import sweep_markdown, sweep_metrics
from tests.models.report.test_tables import NAMES, ranks_table


def sweep_points() -> pl.DataFrame:
    base = ranks_table().filter(pl.col("model") == "lgcd")
    sweep = pl.concat([base.with_columns(param=pl.lit(p), value=pl.lit(v), rank=pl.lit(r))
                       for p, v, r in (("n_k", 5.0, 3), ("n_k", 10.0, 0), ("T", 50.0, 7),
                                       ("lam", 0.3, 1))])
    return sweep_metrics(sweep)


def test_sweep_points_and_table():
    points = sweep_points()
    assert points.filter((pl.col("param") == "n_k") & (pl.col("value") == 5.0)
                         & (pl.col("target_domain") == "A"))["hr@5"][0] == 1.0
    assert "| T | 50 |" in sweep_markdown(points, NAMES)

"""Our numbers beside the paper's published Food-Kitchen ones (models/report/paper.py).

Only the paper's own protocol ("all") on the LLMCDSR release of Food-Kitchen is comparable;
the report shows these tables only then.
"""

import polars as pl

from models.report.paper import (
    PAPER_NAMES,
    TABLE1_COLUMNS,
    TABLE1_FOOD_KITCHEN,
    TABLE3_COLUMNS,
    TABLE3_FOOD_KITCHEN,
)
from models.report.tables import label, summary_rows


def paper_comparison(summary: pl.DataFrame, split: str = "test",
                     protocol: str = "all") -> pl.DataFrame:
    """Ours (mean over seeds) beside the paper's Food-Kitchen numbers, for models in both.

    Only the paper's own protocol ("all") is comparable; without it the frame is empty.
    """
    rows = summary_rows(summary, split, protocol)
    out = []
    for model, paper_name in PAPER_NAMES.items():
        for table, published, columns in (("Table 1", TABLE1_FOOD_KITCHEN, TABLE1_COLUMNS),
                                          ("Table 3", TABLE3_FOOD_KITCHEN, TABLE3_COLUMNS)):
            if paper_name not in published:
                continue
            for (domain, metric), paper in zip(columns, published[paper_name], strict=True):
                ours = rows.get((model, domain))
                if ours is None:
                    continue
                mean = ours[f"{metric}_mean"]
                out.append({"table": table, "model": model, "paper_row": paper_name,
                            "target_domain": domain, "metric": metric, "ours": mean,
                            "ours_std": ours[f"{metric}_std"], "paper": paper,
                            "diff": mean - paper})
    schema = {"table": pl.String, "model": pl.String, "paper_row": pl.String,
              "target_domain": pl.String, "metric": pl.String, "ours": pl.Float64,
              "ours_std": pl.Float64, "paper": pl.Float64, "diff": pl.Float64}
    return pl.DataFrame(out, schema=schema)


def paper_comparison_markdown(comparison: pl.DataFrame, domain_names: dict[str, str]) -> str:
    if comparison.is_empty():
        return "_no model of ours has a row in the paper's tables_"
    lines = ["| table | model (paper row) | domain | metric | ours | paper | ours − paper |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in comparison.iter_rows(named=True):
        lines.append(f"| {r['table']} | {r['model']} ({r['paper_row']}) | "
                     f"{domain_names[r['target_domain']]} | {label(r['metric'])} | "
                     f"{r['ours']:.4f} ± {r['ours_std']:.4f} | {r['paper']:.4f} | "
                     f"{r['diff']:+.4f} |")
    return "\n".join(lines)


def paper_tables_markdown(domain_names: dict[str, str]) -> str:
    """The paper's published Food-Kitchen Tables 1 and 3, verbatim, for reference."""
    parts = []
    for title, published, columns in (("Table 1", TABLE1_FOOD_KITCHEN, TABLE1_COLUMNS),
                                      ("Table 3", TABLE3_FOOD_KITCHEN, TABLE3_COLUMNS)):
        head = " | ".join(f"{domain_names[d]} {label(m)}" for d, m in columns)
        lines = [f"**{title}** (LGCD paper, Food-Kitchen)", "", f"| method | {head} |",
                 "|---|" + "---:|" * len(columns)]
        lines += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |"
                  for name, values in published.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)

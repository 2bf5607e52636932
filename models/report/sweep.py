"""Figure 3 of the paper: metrics of the LGCD sweep points (nK, T, lambda) as rows and a table."""

import polars as pl

from models.metrics import ranking_metrics
from models.report.tables import METRICS, TABLE3_METRICS, label, pick_protocol


def sweep_metrics(ranks: pl.DataFrame, split: str = "test") -> pl.DataFrame:
    """Figure 3 points: metrics per (param, value, protocol, target_domain) of the sweep's ranks.

    Protocols keep the ranks' order (primary first) within a point.
    """
    out = []
    part = ranks.filter(pl.col("split") == split)
    protocols = {p: i for i, p in enumerate(part["protocol"].unique(maintain_order=True))}
    for (param, value, protocol), group in part.group_by(["param", "value", "protocol"],
                                                         maintain_order=True):
        for domain in ("A", "B", "all"):
            sub = group if domain == "all" else group.filter(pl.col("target_domain") == domain)
            if sub.height:
                out.append({"param": param, "value": float(value), "protocol": protocol,
                            "target_domain": domain, "users": sub.height,
                            **ranking_metrics(sub["rank"].to_numpy())})
    schema = {"param": pl.String, "value": pl.Float64, "protocol": pl.String,
              "target_domain": pl.String, "users": pl.Int64, **{m: pl.Float64 for m in METRICS}}
    order = {"n_k": 0, "T": 1, "lam": 2}  # Figure 3's panel order
    return (pl.DataFrame(out, schema=schema)
            .with_columns(panel=pl.col("param").replace_strict(order, default=len(order)),
                          slot=pl.col("protocol").replace_strict(protocols, default=len(protocols),
                                                                 return_dtype=pl.Int64))
            .sort("panel", "value", "slot", "target_domain").drop("panel", "slot"))


def sweep_markdown(points: pl.DataFrame, domain_names: dict[str, str],
                   protocol: str | None = None) -> str:
    """Figure 3 as a table: HR@5 and NDCG@5 per swept value and target domain, one protocol."""
    protocol = pick_protocol(points, protocol)
    points = points.filter(pl.col("protocol") == protocol)
    lines = ["| parameter | value | " + " | ".join(f"{domain_names[d]} {label(m)}" for d in ("A", "B")
                                                 for m in TABLE3_METRICS) + " |",
             "|---|---:|" + "---:|" * 4]
    for (param, value), group in points.group_by(["param", "value"], maintain_order=True):
        cells = []
        for d in ("A", "B"):
            row = group.filter(pl.col("target_domain") == d)
            cells += [f"{row[m][0]:.4f}" if row.height else "–" for m in TABLE3_METRICS]
        lines.append(f"| {param} | {value:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""PNG figures of the report: metric bars per model, and Figure 3's sensitivity curves.

Rendered headless (Agg) at a small size and DPI so that each stays well under
100 KB as a base64 data URI in Dagster metadata.
"""

import io

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import polars as pl  # noqa: E402

from models.report.tables import label  # noqa: E402

PARAM_LABELS = {"n_k": "$n_K$ (pseudo items)", "T": "$T$ (diffusion steps)",
                "lam": r"$\lambda$ (start-step ratio)"}


def _png(fig) -> bytes:
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def metric_bars_png(summary: pl.DataFrame, models: list[str], domain_names: dict[str, str],
                    metrics: tuple[str, ...] = ("hr@10", "ndcg@10"), split: str = "test") -> bytes:
    """One panel per target domain: grouped bars of each metric per model, std as error bars."""
    fig, axes = plt.subplots(1, 2, figsize=(8.0, 3.0), dpi=80, sharey=True)
    rows = {(r["model"], r["target_domain"]): r
            for r in summary.filter(pl.col("split") == split).iter_rows(named=True)}
    width = 0.8 / len(metrics)
    for ax, domain in zip(axes, ("A", "B"), strict=True):
        for j, metric in enumerate(metrics):
            means = [rows[(m, domain)][f"{metric}_mean"] if (m, domain) in rows else 0.0
                     for m in models]
            stds = [rows[(m, domain)][f"{metric}_std"] if (m, domain) in rows else 0.0
                    for m in models]
            xs = [i + (j - (len(metrics) - 1) / 2) * width for i in range(len(models))]
            ax.bar(xs, means, width, yerr=stds, capsize=2, label=label(metric))
        ax.set_xticks(range(len(models)))
        ax.set_xticklabels(models, rotation=45, ha="right", fontsize=7)
        ax.set_title(f"target {domain_names[domain]} ({split})", fontsize=9)
        ax.grid(axis="y", alpha=0.3)
        ax.tick_params(axis="y", labelsize=7)
    axes[0].legend(fontsize=7)
    return _png(fig)


def sensitivity_png(points: pl.DataFrame, domain_names: dict[str, str],
                    metric: str = "hr@5") -> bytes:
    """Figure 3: ``metric`` against each swept parameter, one line per target domain.

    points: rows with param, value, target_domain and ``metric`` (test split).
    """
    params = [p for p in PARAM_LABELS if p in set(points["param"].to_list())]
    fig, axes = plt.subplots(1, max(1, len(params)), figsize=(3.0 * max(1, len(params)), 2.6),
                             dpi=80, squeeze=False)
    for ax, param in zip(axes[0], params, strict=False):
        part = points.filter(pl.col("param") == param).sort("value")
        for domain in ("A", "B"):
            line = part.filter(pl.col("target_domain") == domain)
            ax.plot(line["value"].to_list(), line[metric].to_list(), marker="o", markersize=3,
                    label=domain_names[domain])
        ax.set_xticks(sorted(set(part["value"].to_list())))
        ax.set_xlabel(PARAM_LABELS[param], fontsize=8)
        ax.set_ylabel(label(metric), fontsize=8)
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7)
    return _png(fig)

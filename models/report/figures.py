"""PNG figures: training curves, the report's metric bars per model and Figure 3's sensitivity.

Rendered headless (Agg), so they work in any run worker, at a small size and DPI so that
each stays well under 100 KB as a base64 data URI in Dagster metadata
(:func:`png_markdown`), which the UI shows inline.
"""

import base64
import io
from collections.abc import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)
import polars as pl  # noqa: E402

from models.report.tables import label  # noqa: E402

PARAM_LABELS = {"n_k": "$n_K$ (pseudo items)", "T": "$T$ (diffusion steps)",
                "lam": r"$\lambda$ (start-step ratio)"}


def png_bytes(fig) -> bytes:
    """Lay out, render and close ``fig``: its PNG bytes (closed even when rendering fails)."""
    buffer = io.BytesIO()
    try:
        fig.tight_layout()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()


def png_markdown(png: bytes, alt: str) -> str:
    """Markdown of an inline image: ``png`` as a base64 data URI, ``alt`` its text."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"


def training_curves_png(epochs: Sequence[float], loss: Sequence[float],
                        metrics: Mapping[str, Sequence[float]], title: str,
                        best_epoch: float | None = None) -> bytes:
    """Loss (left) and validation metrics (right) per epoch as PNG bytes."""
    fig, (ax_loss, ax_metric) = plt.subplots(1, 2, figsize=(6.4, 2.6), dpi=80)
    try:
        ax_loss.plot(epochs, loss, marker="o", markersize=3, color="tab:red")
        ax_loss.set_xlabel("epoch")
        ax_loss.set_ylabel("training loss")
        for name, values in metrics.items():
            ax_metric.plot(epochs, values, marker="o", markersize=3, label=name)
        ax_metric.set_xlabel("epoch")
        ax_metric.set_ylabel("validation")
        ax_metric.legend(fontsize=7)
        if best_epoch is not None:
            for ax in (ax_loss, ax_metric):
                ax.axvline(best_epoch, color="grey", linestyle=":", linewidth=1)
        for ax in (ax_loss, ax_metric):
            ax.grid(alpha=0.3)
            ax.tick_params(labelsize=7)
        fig.suptitle(title, fontsize=9)
    except BaseException:
        plt.close(fig)
        raise
    return png_bytes(fig)


def history_png(history: Sequence[Mapping[str, float]], title: str, best_epoch: float,
                curves: Mapping[str, str] | None = None) -> bytes:
    """:func:`training_curves_png` of a training loop's history rows (models/train.py).

    ``curves`` maps a curve's label to its key in the rows (default HR@10 and NDCG@10); a key
    no row holds draws no curve, and the loss is ``loss`` (else ``loss_total``).
    """
    curves = {"HR@10": "hr@10", "NDCG@10": "ndcg@10"} if curves is None else curves
    xs = [h["epoch"] for h in history]
    loss = [h.get("loss", h.get("loss_total", float("nan"))) for h in history]
    lines = {name: [h.get(key, float("nan")) for h in history]
             for name, key in curves.items() if any(key in h for h in history)}
    return training_curves_png(xs, loss, lines, title, best_epoch)


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
    return png_bytes(fig)


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
    return png_bytes(fig)

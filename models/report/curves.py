"""Small training-curve PNGs, rendered headless (Agg) so they work in any run worker.

They are embedded in Dagster metadata as a base64 data URI, which the UI shows
inline; figure size and DPI keep a PNG well under 60 KB.
"""

import io
from collections.abc import Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (the backend must be chosen first)


def training_curves_png(epochs: Sequence[int], loss: Sequence[float],
                        metrics: dict[str, Sequence[float]], title: str,
                        best_epoch: int | None = None) -> bytes:
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
        fig.tight_layout()
        buffer = io.BytesIO()
        fig.savefig(buffer, format="png")
    finally:
        plt.close(fig)
    return buffer.getvalue()

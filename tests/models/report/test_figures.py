"""PNG figures: valid and small, and their Markdown as an inline data URI."""

import base64

import pytest

from models.report.figures import (
    history_png,
    metric_bars_png,
    png_markdown,
    sensitivity_png,
    training_curves_png,
)
from models.report.tables import summarize
from tests.models.report.test_sweep import sweep_points
from tests.models.report.test_tables import NAMES, ranks_table

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_report_figures_are_small_pngs():
    for png in (sensitivity_png(sweep_points(), NAMES),
                metric_bars_png(summarize(ranks_table()), ["lgcd", "sasrec"], NAMES)):
        assert png[:8] == PNG_MAGIC and len(png) < 100_000


def test_training_curve_png_is_small_and_valid():
    png = training_curves_png([1, 2, 3], [3.0, 2.0, 1.5], {"HR@10": [0.1, 0.2, 0.3]}, "t", 3)
    assert png.startswith(PNG_MAGIC) and len(png) < 60_000


def test_history_png_draws_the_loop_rows_as_the_curves_of_their_keys(monkeypatch):
    drawn = {}

    def record(epochs, loss, metrics, title, best_epoch=None):
        drawn.update(epochs=epochs, loss=loss, metrics=metrics, title=title, best=best_epoch)
        return b"png"

    monkeypatch.setattr("models.report.figures.training_curves_png", record)
    history = [{"epoch": 1, "loss_total": 2.0, "loss": 2.0, "hr@10": 0.1, "ndcg@10": 0.05},
               {"epoch": 2, "loss_total": 1.0, "loss": 1.0, "hr@10": 0.3, "ndcg@10": 0.2}]
    assert history_png(history, "LGCD full", 2) == b"png"
    assert drawn == {"epochs": [1, 2], "loss": [2.0, 1.0], "title": "LGCD full", "best": 2,
                     "metrics": {"HR@10": [0.1, 0.3], "NDCG@10": [0.05, 0.2]}}
    baseline = [{"epoch": 1, "loss": 0.5, "val_ndcg@10": 0.1, "seconds": 1.0}]
    history_png(baseline, "sasrec, seed 0", 1, {"NDCG@10": "val_ndcg@10", "HR@10": "hr@10"})
    assert drawn["metrics"] == {"NDCG@10": [0.1]} and drawn["loss"] == [0.5]


def test_history_png_is_a_png():
    rows = [{"epoch": e, "loss": 1.0 / e, "hr@10": 0.1 * e, "ndcg@10": 0.05 * e} for e in (1, 2, 3)]
    assert history_png(rows, "t", 2)[:8] == PNG_MAGIC


@pytest.mark.parametrize("alt", ["training curves", "sasrec seed 0"])
def test_png_markdown_is_an_inline_data_uri_that_decodes_back(alt):
    png = training_curves_png([1, 2], [1.0, 0.5], {"NDCG@10": [0.1, 0.2]}, "t")
    md = png_markdown(png, alt)
    prefix = f"![{alt}](data:image/png;base64,"
    assert md.startswith(prefix) and md.endswith(")")
    assert base64.b64decode(md[len(prefix):-1]) == png

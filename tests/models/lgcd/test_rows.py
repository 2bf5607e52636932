"""Training and validation rows from the pipeline's tables: nK cut, overlap share, real target counts."""


import polars as pl
import pytest

from models.lgcd.config import LGCDConfig
from models.lgcd.data import row_from_record
from models.lgcd.model import LGCD
from models.lgcd.rows import target_counts, training_rows, validation_rows
from tests.models.lgcd.fakes import fake_encoders

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def test_training_rows_keep_top_nk_pseudo_items_and_overlap_share(tables):
    sequences, pseudo, _, _ = tables
    rows, skipped = training_rows(sequences, pseudo, n_k=4)
    assert not skipped
    assert sum(r.kind == "overlap" for r in rows) == 12
    assert sum(r.kind == "pseudo" for r in rows) == pseudo.height
    # nK = 2: the two best-ranked pseudo items stay; the last of them is the L_rec target
    rows2, _ = training_rows(sequences, pseudo, n_k=2)
    for r, rec in zip([r for r in rows2 if r.kind == "pseudo"], pseudo.sort("user").iter_rows(
            named=True), strict=True):
        kept = [i for i, p in zip(r.items, r.is_pseudo, strict=True) if p] + [r.target_item]
        assert sorted(kept) == sorted(rec["pseudo_items"][:2])
        assert sum(not p for p in r.is_pseudo) == sum(not p for p in rec["is_pseudo"])
    part, _ = training_rows(sequences, pseudo, n_k=4, overlap_ratio=0.25, seed=0)
    again, _ = training_rows(sequences, pseudo, n_k=4, overlap_ratio=0.25, seed=0)
    assert sum(r.kind == "overlap" for r in part) == 3
    assert [r.user for r in part] == [r.user for r in again]

def test_validation_rows_sample_and_unusable_rows_are_reported(tables):
    sequences = tables[0]
    rows, skipped = validation_rows(sequences)
    assert len(rows) == 40 and not skipped and all(r.kind == "eval" for r in rows)
    assert len(validation_rows(sequences, max_users=10)[0]) == 10
    broken = sequences.with_columns(
        pl.when(pl.col("user") == rows[0].user).then(None).otherwise(pl.col("target_item"))
        .alias("target_item"))
    rows, skipped = validation_rows(broken)
    assert len(rows) == 39 and skipped[0][0] == validation_rows(sequences)[0][0].user

def test_item_bias_starts_at_the_real_target_popularity():
    """Counts come from real overlap users (history + target), never from pseudo guesses."""

    overlap = row_from_record(dict(user="o", items=[1, 3, 2], domains=["A", "B", "A"],
                                   source_domain="A", target_domain="B", target_item=3,
                                   kind="overlap", split="train"))
    pseudo = row_from_record(dict(user="p", items=[1, 4, 2, 4], domains=["A", "B", "A", "B"],
                                  is_pseudo=[False, True, False, True], source_domain="A",
                                  kind="single", split="train"))
    counts = target_counts([overlap, pseudo], {"A": 5, "B": 6})
    assert set(counts) == {"AB"} and counts["AB"].tolist() == [0, 0, 0, 2, 0, 0]
    model = LGCD(LGCDConfig(d=16, T=10, item_bias=True), fake_encoders({"A": 5, "B": 6}, d=16))
    model.init_item_bias("AB", counts["AB"])
    bias = model.paths["AB"].item_bias.detach()
    assert bias.argmax() == 3 and abs(float(bias.mean())) < 1e-6

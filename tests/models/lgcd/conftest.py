"""Shared pieces of the LGCD tests: a small config and the planted problem as pipeline tables."""


import polars as pl
import pytest
import torch

from models.lgcd.config import LGCDConfig
from tests.models.lgcd.fakes import planted_problem, pretrained_fake_encoders

CFG = LGCDConfig(d=12, T=6, batch_size=32, overlap_batch_size=8, epochs=3, patience=3, seed=3,
                 n_k=4)
CPU = torch.device("cpu")


@pytest.fixture(scope="module")
def tables():
    """The planted problem as the pipeline's ``sequences`` and ``pseudo_sequences`` tables."""
    records, text, n_items = planted_problem(text_dim=12, n_pseudo=64, n_overlap=12, n_eval=40,
                                             items_per_theme=4, n_k=4, seed=1)
    seqs, pseudo = [], []
    for r in records:
        if "is_pseudo" in r:
            tgt = "B" if r["source_domain"] == "A" else "A"
            ranked = [i for i, p in zip(r["items"], r["is_pseudo"], strict=True) if p][::-1]
            pseudo.append({"user": r["user"], "source_domain": r["source_domain"],
                           "target_domain": tgt, "items": r["items"], "domains": r["domains"],
                           "is_pseudo": r["is_pseudo"], "pseudo_items": ranked, "fallback": False})
            seqs.append({"user": r["user"], "split": "train", "kind": "single",
                         "items": [i for i, p in zip(r["items"], r["is_pseudo"], strict=True)
                                   if not p],
                         "source_domain": r["source_domain"], "target_domain": None,
                         "target_item": None})
        else:
            seqs.append({k: r[k] for k in ("user", "split", "kind", "items", "source_domain",
                                           "target_domain", "target_item")})
        seqs[-1]["domains"] = [r["source_domain"]] * len(seqs[-1]["items"]) \
            if "is_pseudo" in r else r["domains"]
    return pl.DataFrame(seqs), pl.DataFrame(pseudo), text, n_items


def encoders(text):
    torch.manual_seed(0)  # the fakes' ID tables are random: the same "pre-trained" ones each time
    return pretrained_fake_encoders(text)


def assert_same_state(a: dict, b: dict):
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)



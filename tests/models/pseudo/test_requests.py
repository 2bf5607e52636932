import numpy as np
import polars as pl

from models.pseudo.prompts import load_template
from models.pseudo.requests import DEFAULT_TEMPLATE, GenerationConfig, generation_requests, insert_pseudo


def test_insert_keeps_both_orders_and_flags_pseudo():
    rng = np.random.default_rng(0)
    merged, flags = insert_pseudo([1, 2, 3, 4], [100, 200, 300], rng)
    assert len(merged) == 7 and sum(flags) == 3
    assert [m for m, f in zip(merged, flags, strict=True) if f] == [100, 200, 300]
    assert [m for m, f in zip(merged, flags, strict=True) if not f] == [1, 2, 3, 4]
    again, _ = insert_pseudo([1, 2, 3, 4], [100, 200, 300], np.random.default_rng(0))
    assert again == merged


def _tables():
    catalog = pl.DataFrame({"item": ["a0", "a1", "b0", "b1"], "domain": ["A", "A", "B", "B"],
                            "index": [0, 1, 0, 1], "title": ["Pesto", "Pasta", "Wok", "Kettle"],
                            "text": ["Pesto", "Pasta", "Wok", "Kettle"]})
    seq = pl.DataFrame({
        "user": ["ua", "ub", "uo"], "split": ["train"] * 3, "kind": ["single", "single", "overlap"],
        "items": [[0, 1], [1], [0, 1]], "domains": [["A", "A"], ["B"], ["A", "B"]],
        "timestamps": [[1, 2], [1], [1, 2]], "target_item": [None, None, 0],
        "target_domain": [None, None, "B"], "source_domain": ["A", "B", "A"]})
    return seq, catalog


def test_requests_cover_both_directions_with_examples():
    seq, catalog = _tables()
    tpl = load_template(DEFAULT_TEMPLATE)
    req, prefixes = generation_requests(seq, catalog, {"A": "Grocery_and_Gourmet_Food", "B": "Home_and_Kitchen"},
                                        tpl, GenerationConfig())
    assert sorted(req["id"].to_list()) == ["A>B:ua", "B>A:ub"]
    assert set(prefixes) == {"A->B", "B->A"}
    assert "Wok" in prefixes["A->B"]  # the overlap user's B items are the in-context answer
    ua = req.filter(pl.col("user") == "ua").row(0, named=True)
    assert ua["history_titles"] == ["Pesto", "Pasta"] and "- Pasta" in ua["messages"][1]["content"]

"""A pair of raw dumps -> interactions, items, quarantine (2018 and 2023 formats)."""

import gc
import gzip
import json
import random
from pathlib import Path

import polars as pl
import pytest

from models.data.ingest import DomainFiles, ingest_pair, summary
from models.data.schema import INTERACTIONS, ITEMS, QUARANTINE
from models.data.sources import SourceError

NOW = 1_700_000_000


def jsonl(path: Path, rows: list[dict]) -> Path:
    data = "".join(json.dumps(r) + "\n" for r in rows).encode()
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
    return path


def r18(user, item, ts, rating=5.0):
    return {"reviewerID": user, "asin": item, "unixReviewTime": ts, "overall": rating}


def m18(item, title, **kw):
    return {"asin": item, "title": title, **kw}


def pair_2018(tmp_path: Path, reviews_a, meta_a, reviews_b, meta_b) -> list[DomainFiles]:
    return [
        DomainFiles("A", jsonl(tmp_path / "Food.json.gz", reviews_a),
                    jsonl(tmp_path / "meta_Food.json.gz", meta_a), "amazon2018"),
        DomainFiles("B", jsonl(tmp_path / "Kitchen.json.gz", reviews_b),
                    jsonl(tmp_path / "meta_Kitchen.json.gz", meta_b), "amazon2018"),
    ]


def test_2018_pair_with_duplicates_and_missing_metadata(tmp_path):
    files = pair_2018(
        tmp_path,
        [r18("U1", "F1", 1_500_000_200), r18("U1", "F1", 1_500_000_100, 1.0),  # dup: keep 2nd line
         r18("U2", "F2", 1_500_000_000), r18("U2", "F9", 1_500_000_000)],      # F9: no metadata
        [m18("F1", "<b>Green</b> Tea", category=["Food", "Tea", "</span>"], brand="Acme",
             description=["<p>Nice</p>", "tea"]),
         m18("F2", "Coffee"), m18("F2", "Coffee again"),                       # duplicate item
         m18("F3", "Never reviewed")],
        [r18("U1", "K1", 1_500_000_300)],
        [m18("K1", "Teapot", brand="PotCo"), m18("K2", "   ")],
    )
    result = ingest_pair(files, now=NOW)
    assert result.interactions.columns == list(INTERACTIONS)
    assert result.items.columns == list(ITEMS)
    assert result.quarantine.columns == list(QUARANTINE)
    assert result.interactions.rows() == [
        ("U1", "F1", 1_500_000_100, 1.0, "A"), ("U2", "F2", 1_500_000_000, 5.0, "A"),
        ("U1", "K1", 1_500_000_300, 5.0, "B")]
    tea = result.items.filter(pl.col("item") == "F1").row(0, named=True)
    assert (tea["title"], tea["category"], tea["brand"], tea["description"]) == (
        "Green Tea", "Tea", "Acme", "Nice tea")
    assert tea["text"] == "Green Tea | Tea | Acme"
    assert result.items.filter(pl.col("item") == "F2")["title"].to_list() == ["Coffee"]
    assert set(result.items["item"]) == {"F1", "F2", "K1"}  # never-reviewed F3 and K2 left out
    q = {(Path(s).name, line, reason) for s, line, reason, _ in result.quarantine.rows()}
    assert q == {("Food.json.gz", 1, "duplicate_review"),
                 ("Food.json.gz", 4, "item_without_metadata"),
                 ("meta_Food.json.gz", 3, "duplicate_item")}
    stats = summary(result)
    assert stats["quarantine_by_reason"] == {"duplicate_item": 1, "duplicate_review": 1,
                                             "item_without_metadata": 1}
    assert stats["overlapping_users"] == 1
    assert stats["per_domain"]["A"] == {"interactions": 2, "users": 2, "items": 2}


def test_untitled_metadata_is_quarantined_and_its_reviews_too(tmp_path):
    files = pair_2018(tmp_path, [r18("U1", "F1", 1_500_000_000), r18("U1", "F2", 1_500_000_000)],
                      [m18("F1", "<br/>"), m18("F2", "Tea")],
                      [r18("U1", "K1", 1_500_000_000)], [m18("K1", "Pot")])
    result = ingest_pair(files, now=NOW)
    assert result.interactions["item"].to_list() == ["F2", "K1"]
    reasons = sorted(result.quarantine["reason"].to_list())
    assert reasons == ["item_without_metadata", "missing_field"]


def test_2023_pair_plain_and_gz(tmp_path):
    reviews_a = [{"user_id": "U1", "parent_asin": "P1", "asin": "C1", "timestamp": 1_600_000_000_000,
                  "rating": 4.0}]
    meta_a = [{"parent_asin": "P1", "title": "Olive Oil", "categories": [], "store": "Olio",
               "main_category": "Grocery", "description": ["Cold pressed."]}]
    reviews_b = [{"user_id": "U1", "parent_asin": "P2", "timestamp": 1_600_000_100_000,
                  "rating": 5}]
    meta_b = [{"parent_asin": "P2", "title": "Oil Dispenser",
               "categories": ["Home & Kitchen", "Dispensers"], "store": None}]
    files = [
        DomainFiles("A", jsonl(tmp_path / "Food.jsonl", reviews_a),
                    jsonl(tmp_path / "meta_Food.jsonl", meta_a), "amazon2023"),
        DomainFiles("B", jsonl(tmp_path / "Kitchen.jsonl.gz", reviews_b),
                    jsonl(tmp_path / "meta_Kitchen.jsonl.gz", meta_b), "amazon2023"),
    ]
    result = ingest_pair(files, now=NOW)
    assert result.interactions.rows() == [("U1", "P1", 1_600_000_000, 4.0, "A"),
                                          ("U1", "P2", 1_600_000_100, 5.0, "B")]
    assert result.items["text"].to_list() == ["Olive Oil | Grocery | Olio",
                                              "Oil Dispenser | Dispensers"]


def test_unknown_format_is_refused():
    with pytest.raises(ValueError, match="format='amazon2014'"):
        DomainFiles("A", Path("r"), Path("m"), "amazon2014")


def test_missing_meta_file_stops_with_its_name(tmp_path):
    files = pair_2018(tmp_path, [r18("U1", "F1", 1_500_000_000)], [m18("F1", "Tea")],
                      [r18("U1", "K1", 1_500_000_000)], [m18("K1", "Pot")])
    files[1].meta.unlink()
    with pytest.raises(SourceError, match="meta_Kitchen.json.gz does not exist"):
        ingest_pair(files, now=NOW)


def _random_pair(tmp_path: Path, seed: int) -> list[DomainFiles]:
    """Two domains of 600 reviews each: shared users, repeated (user, item) pairs, items
    without metadata and a few broken lines."""
    rng = random.Random(seed)
    files = []
    for domain, prefix in (("A", "F"), ("B", "K")):
        reviews = [r18(f"U{rng.randrange(150)}", f"{prefix}{rng.randrange(60)}",
                       1_500_000_000 + rng.randrange(10_000), float(rng.randrange(1, 6)))
                   for _ in range(600)]
        meta = [m18(f"{prefix}{i}", f"Title {i}") for i in range(55)]  # 55..59: no metadata
        reviews_path = jsonl(tmp_path / f"{domain}.json.gz", reviews)
        with gzip.open(reviews_path, "ab") as fh:
            fh.write(b"{broken\n")
        files.append(DomainFiles(domain, reviews_path,
                                 jsonl(tmp_path / f"meta_{domain}.json.gz", meta), "amazon2018"))
    return files


def test_partitions_change_row_order_only(tmp_path):
    """However many partitions the reviews are spilled to, the same rows are kept and set aside."""
    files = _random_pair(tmp_path, seed=3)
    one = ingest_pair(files, now=NOW, partitions=1, block_bytes=2_000)
    many = ingest_pair(files, now=NOW, partitions=7, block_bytes=2_000)
    columns = list(INTERACTIONS)
    assert one.interactions.sort(columns).equals(many.interactions.sort(columns))
    assert one.interactions.height > 500 and one.interactions["user"].is_duplicated().any()
    assert one.quarantine.sort("source", "line").equals(many.quarantine.sort("source", "line"))
    assert set(one.quarantine["reason"]) == {"duplicate_review", "item_without_metadata",
                                             "invalid_json"}
    assert summary(one) == summary(many)
    frame = one.interactions
    users = frame.group_by("user").agg(pl.col("domain").n_unique())
    assert summary(one)["overlapping_users"] == int((users["domain"] == 2).sum()) > 0
    assert summary(one)["per_domain"]["B"] == {
        "interactions": frame.filter(pl.col("domain") == "B").height,
        "users": frame.filter(pl.col("domain") == "B")["user"].n_unique(),
        "items": frame.filter(pl.col("domain") == "B")["item"].n_unique()}


def test_interactions_go_to_the_workdir_and_an_owned_temp_folder_is_removed(tmp_path):
    files = _random_pair(tmp_path, seed=4)
    kept = ingest_pair(files, now=NOW, workdir=tmp_path / "work", partitions=3)
    assert kept.interactions_file.parent == tmp_path / "work"
    assert [p.name for p in (tmp_path / "work").iterdir()] == [kept.interactions_file.name]
    owned = ingest_pair(files, now=NOW)
    folder = owned.interactions_file.parent
    assert folder.is_dir() and owned.interactions.height == kept.interactions.height
    del owned
    gc.collect()
    assert not folder.exists()

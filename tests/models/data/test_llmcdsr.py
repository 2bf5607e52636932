"""LLMCDSR release import: restricted unpickling, a tiny release, and the paper's Table 2."""

import os
import pickle
from pathlib import Path

import polars as pl
import pytest

from models.data.llmcdsr import UnsafePickleError, import_release, load_pickle, table2
from models.data.schema import INTERACTIONS, ITEM_CATALOG, SEQUENCES
from models.data.sources import SourceError
from models.data.split import history_violations, leakage
from tests.conftest import LLMCDSR_DIR, requires_llmcdsr


class Payload:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


def test_plain_containers_load_under_every_protocol(tmp_path):
    value = {"a": [1, 2.5, None, True], "b": ("x", {"y"}, frozenset({3}))}
    for protocol in range(pickle.HIGHEST_PROTOCOL + 1):
        path = tmp_path / f"p{protocol}.pkl"
        path.write_bytes(pickle.dumps(value, protocol=protocol))
        assert load_pickle(path) == value


@pytest.mark.parametrize("payload", [Payload(), Path("x"), pl.Series([1])])
def test_any_class_or_function_reference_is_refused_with_the_file_named(tmp_path, payload):
    path = tmp_path / "item_set_A.pkl"
    path.write_bytes(pickle.dumps(payload))
    with pytest.raises(UnsafePickleError, match=r"refusing pickle .*item_set_A\.pkl: global"):
        load_pickle(path)


def test_truncated_pickle_is_a_source_error(tmp_path):
    path = tmp_path / "text_A.pkl"
    path.write_bytes(pickle.dumps({"a": "b" * 100})[:20])
    with pytest.raises(SourceError, match="text_A.pkl is corrupt or truncated"):
        load_pickle(path)


def tiny_release(folder: Path) -> Path:
    """Two A items, three B items (B written as index + 2), three bad lines."""
    folder.mkdir()
    (folder / "num.txt").write_text("2\n3\n")
    (folder / "instance_num.txt").write_text("1\n2\n1\n")
    (folder / "item_set_A.pkl").write_bytes(pickle.dumps({"a0": 0, "a1": 1}))
    (folder / "item_set_B.pkl").write_bytes(pickle.dumps({"b0": 0, "b1": 1, "b2": 2}))
    (folder / "text_A.pkl").write_bytes(pickle.dumps({"a0": "Tea <b>Green</b>", "a1": "Coffee"}))
    (folder / "text_B.pkl").write_bytes(pickle.dumps({"b0": "Pot", "b1": "Cup", "b2": "Kettle"}))
    (folder / "train_A.txt").write_text("1\t0,1\n2\t0,zz\n3\t0,99\n")  # 2, 3: invalid
    (folder / "train_B.txt").write_text("1\t2,3,4\n2\t0,3\n")  # line 2 holds an A item
    (folder / "train_overlap.txt").write_text("1\t0,2,1,3\n")
    (folder / "valid.txt").write_text("1\t1,2,0,4\n")  # target B2: strict history = [A1, A0]
    (folder / "test.txt").write_text("1\t3,0,4,1\n")  # target A1: strict history = [B1, B2]
    return folder


def test_tiny_release_tables_and_policies(tmp_path):
    release = import_release(tiny_release(tmp_path / "rel"), "strict")
    assert release.interactions.columns == list(INTERACTIONS)
    assert release.item_catalog.columns == list(ITEM_CATALOG)
    assert release.sequences.columns == list(SEQUENCES)
    assert release.item_catalog.select("item", "domain", "index", "title").rows() == [
        ("a0", "A", 0, "Tea Green"), ("a1", "A", 1, "Coffee"), ("b0", "B", 0, "Pot"),
        ("b1", "B", 1, "Cup"), ("b2", "B", 2, "Kettle")]
    assert [(Path(s).name, n, r) for s, n, r, _ in release.quarantine.rows()] == [
        ("train_A.txt", 2, "invalid_line"), ("train_A.txt", 3, "invalid_line"),
        ("train_B.txt", 2, "wrong_domain")]
    seqs = {r["user"]: r for r in release.sequences.iter_rows(named=True)}
    assert set(seqs) == {"train_A:1", "train_B:1", "train_overlap:1", "valid:1", "test:1"}
    assert seqs["train_B:1"]["items"] == [0, 1, 2] and seqs["train_B:1"]["source_domain"] == "B"
    overlap = seqs["train_overlap:1"]
    assert (overlap["items"], overlap["domains"], overlap["target_item"],
            overlap["target_domain"]) == ([0, 0, 1], ["A", "B", "A"], 1, "B")
    valid = seqs["valid:1"]
    assert (valid["items"], valid["timestamps"], valid["target_item"], valid["source_domain"]) == (
        [1, 0], [0, 2], 2, "A")
    assert seqs["test:1"]["items"] == [1, 2] and seqs["test:1"]["target_domain"] == "A"
    full = import_release(tmp_path / "rel", "full")
    test_full = full.sequences.filter(pl.col("user") == "test:1").row(0, named=True)
    assert test_full["items"] == [1, 0, 2] and test_full["domains"] == ["B", "A", "B"]
    user_a = release.interactions.filter(pl.col("user") == "train_A:1")
    assert user_a.select("item", "timestamp", "domain").rows() == [("a0", 0, "A"), ("a1", 1, "A")]
    assert user_a["rating"].is_null().all()


def test_release_with_an_unsafe_pickle_is_refused(tmp_path):
    folder = tiny_release(tmp_path / "rel")
    (folder / "text_B.pkl").write_bytes(pickle.dumps(Payload()))
    with pytest.raises(UnsafePickleError, match="text_B.pkl"):
        import_release(folder)


@pytest.mark.realdata
@requires_llmcdsr()
def test_food_kitchen_release_reproduces_table_2():
    release = import_release(LLMCDSR_DIR, "strict")
    assert table2(release) == {
        "items_A": 8_661, "items_B": 27_637, "single_A": 5_472, "single_B": 38_191,
        "overlap_train": 7_501, "valid": 960, "test": 937, "test_target_A": 300,
        "test_target_B": 637,
    }
    assert release.quarantine.height == 0
    assert leakage(release.sequences) == []
    assert not any(history_violations(release.sequences, strict=True).values())
    full = import_release(LLMCDSR_DIR, "full")
    assert table2(full) == table2(release)
    assert history_violations(full.sequences, strict=True)["foreign_domain_history"] > 0

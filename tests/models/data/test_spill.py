"""Out-of-core spill: users kept together per partition, in line order, errors as for reads."""

import polars as pl
import pytest

from models.data.readers import read_records
from models.data.sources import SourceError
from models.data.spill import merge_distinct, spill_records
from tests.models.data.test_readers import SPEC18, review, write


def test_spill_puts_each_user_in_one_partition_in_line_order(tmp_path):
    users = [f"U{i % 37}" for i in range(400)]
    lines = [review(u, f"I{i % 11}", 1_500_000_000 + i) for i, u in enumerate(users)]
    lines[5] = "{not json"
    path = write(tmp_path / "Food.json.gz", lines)
    result = spill_records(path, SPEC18, tmp_path / "spill", 4, "user", block_bytes=500,
                           distinct=("item",))
    parts = [result.read(number) for number in range(len(result.parts))]
    assert len(parts) == 4 and sum(p.height for p in parts) == result.rows == 399
    assert result.blocks > 10 and result.lines == 400
    owner = {}
    for number, part in enumerate(parts):
        assert part["line"].is_sorted()  # blocks append in file order
        for user in part["user"].unique():
            assert owner.setdefault(user, number) == number
    assert len(owner) == 37 and len(set(owner.values())) > 1
    assert result.quarantine["line"].to_list() == [6]
    assert sorted(result.distinct["item"].to_list()) == sorted({f"I{i}" for i in range(11)})
    whole = read_records(path, SPEC18).frame
    assert pl.concat(parts).sort("line").equals(whole)


def test_spill_of_a_file_without_valid_records_names_it(tmp_path):
    path = write(tmp_path / "Food.json", ["{broken", "[1]"])
    with pytest.raises(SourceError, match="Food.json holds no valid record"):
        spill_records(path, SPEC18, tmp_path / "spill", 3, "user")


def test_merge_distinct_folds_only_at_the_limit():
    seen = [pl.Series(["a", "b"]), pl.Series(["b", "c"])]
    assert merge_distinct(seen, limit=3) is seen
    merged = merge_distinct(seen, limit=2)
    assert len(merged) == 1 and sorted(merged[0].to_list()) == ["a", "b", "c"]

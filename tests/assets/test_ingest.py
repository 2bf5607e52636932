"""interactions, items, quarantine: 2023 files are read like 2018 ones; a truncated file stops the run."""


import polars as pl
import pytest

from pipeline.config import load_dataset_config
from tests.assets.stage_runs import (
    DOWNSTREAM,
    demo_files,
    failure_messages,
    materialized,
    run,
    stored,
    to_2023,
    write_config,
)


@pytest.mark.slow
def test_2023_files_flow_to_sequences(tmp_path, storage_root, instance):
    files = to_2023(demo_files(tmp_path), tmp_path / "2023")
    cfg = load_dataset_config(write_config(tmp_path, "amazon2023", files))
    result = run(cfg, storage_root, instance)
    assert result.success, failure_messages(result)
    interactions = stored(storage_root, "interactions")
    assert interactions["timestamp"].min() > 1_400_000_000  # milliseconds became seconds
    assert stored(storage_root, "sequences").filter(pl.col("split") == "test").height > 0


def test_truncated_gzip_stops_the_run_and_writes_nothing_downstream(tmp_path, storage_root,
                                                                     instance):
    files = demo_files(tmp_path, n_reviews=2000)
    reviews = files["B"][0]
    reviews.write_bytes(reviews.read_bytes()[:-100])
    cfg = load_dataset_config(write_config(tmp_path, "amazon2018", files))
    result = run(cfg, storage_root, instance)
    assert not result.success
    assert any(f"{reviews} is truncated" in m for m in failure_messages(result))
    assert materialized(instance, "raw_sources") == 1
    assert all(materialized(instance, key) == 0 for key in DOWNSTREAM)

"""raw_sources -> sequences through Dagster: demo, 2023 files, bad files, the LLMCDSR release."""

import dataclasses
import gzip
import json
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from app.definitions import build_definitions
from models.data import synthetic
from models.data.schema import INTERACTIONS, ITEM_CATALOG, ITEMS, QUARANTINE, SEQUENCES
from pipeline import storage
from pipeline.config import load_dataset_config
from tests.conftest import LLMCDSR_DIR, requires_llmcdsr

KEYS = ("raw_sources", "interactions", "items", "quarantine", "filtered_interactions",
        "filtered_items", "item_catalog", "sequences")
DOWNSTREAM = KEYS[1:]
COLUMNS = {"interactions": INTERACTIONS, "items": ITEMS, "quarantine": QUARANTINE,
           "item_catalog": ITEM_CATALOG, "sequences": SEQUENCES}


def run(cfg, root: Path, instance):
    """Materialize this stage's assets (and their checks) only, in process."""
    job = build_definitions(cfg, root).resolve_implicit_global_asset_job_def()
    return job.execute_in_process(instance=instance, raise_on_error=False,
                                  asset_selection=[dg.AssetKey(k) for k in KEYS])


def stored(root: Path, key: str) -> pl.DataFrame:
    return storage.read(root / key / storage.latest_version(root, [key]))


def failure_messages(result) -> list[str]:
    return [e.step_failure_data.error.message if e.step_failure_data.error
            else e.step_failure_data.user_failure_data.description
            for e in result.all_events if e.is_step_failure]


def materialized(instance, key: str) -> int:
    records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=dg.AssetKey(key)),
                                              limit=10).records
    return len(records)


def write_config(tmp_path: Path, fmt: str, files: dict[str, tuple[Path, Path]], **extra) -> Path:
    domains = {d: {"category": c, "reviews": str(r), "meta": str(m)}
               for (d, c), (r, m) in zip((("A", "Food"), ("B", "Kitchen")), files.values(),
                                         strict=True)}
    path = tmp_path / "pair.yaml"
    path.write_text(json.dumps({"name": "pair", "format": fmt, "domains": domains,
                                "window_days": None, "k_core": 3, **extra}))
    return path


def demo_files(tmp_path: Path, n_reviews: int = 4000) -> dict[str, tuple[Path, Path]]:
    """The synthetic demo corpus in the 2018 format: {domain: (reviews, meta)}."""
    cfg = synthetic.SyntheticConfig(n_reviews=n_reviews, domains=("Food", "Kitchen"))
    synthetic.generate(cfg, tmp_path / "raw")
    return {d: (tmp_path / "raw" / f"{c}.json.gz", tmp_path / "raw" / f"meta_{c}.json.gz")
            for d, c in (("A", "Food"), ("B", "Kitchen"))}


def to_2023(files: dict[str, tuple[Path, Path]], folder: Path) -> dict[str, tuple[Path, Path]]:
    """Rewrite 2018 files with the 2023 field names (ms timestamps, parent_asin, store)."""
    folder.mkdir()
    out = {}
    for domain, (reviews, meta) in files.items():
        r = [json.loads(x) for x in gzip.decompress(reviews.read_bytes()).splitlines()]
        m = [json.loads(x) for x in gzip.decompress(meta.read_bytes()).splitlines()]
        r23 = folder / f"{domain}.jsonl"  # plain for A, gzip for B
        m23 = folder / (f"meta_{domain}.jsonl.gz" if domain == "B" else f"meta_{domain}.jsonl")
        r23.write_text("".join(json.dumps({
            "user_id": x["reviewerID"], "parent_asin": x["asin"], "asin": x["asin"] + "-c",
            "timestamp": x["unixReviewTime"] * 1000, "rating": x["overall"]}) + "\n" for x in r))
        meta_text = "".join(json.dumps({
            "parent_asin": x["asin"], "title": x["title"], "categories": x["category"][1:],
            "store": x["brand"], "description": x["description"],
            "main_category": x["main_cat"]}) + "\n" for x in m)
        m23.write_bytes(gzip.compress(meta_text.encode()) if m23.suffix == ".gz"
                        else meta_text.encode())
        out[domain] = (r23, m23)
    return out


@pytest.mark.slow
def test_demo_flows_from_raw_sources_to_sequences(demo_cfg, storage_root, instance):
    result = run(demo_cfg, storage_root, instance)
    assert result.success, failure_messages(result)
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"every_user_and_item_has_k_interactions": True,
                      "no_held_out_user_in_training": True,
                      "held_out_histories_in_source_domain": True}
    for key, columns in COLUMNS.items():
        assert stored(storage_root, key).columns == list(columns)
    sequences = stored(storage_root, "sequences")
    assert set(sequences["split"]) == {"train", "valid", "test"}
    mats = [e.step_materialization_data.materialization
            for e in result.get_asset_materialization_events()]
    meta = {m.asset_key.path[-1]: m.metadata for m in mats}
    assert meta["quarantine"]["by_reason"].data == {"duplicate_review":
                                                    stored(storage_root, "quarantine").height}
    assert meta["filtered_interactions"]["overlapping_users"].value > 0
    assert 0 < meta["filtered_interactions"]["fraction_kept"].value < 1


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


def test_no_overlapping_users_after_filtering_stops_before_the_split(tmp_path, storage_root,
                                                                     instance):
    files = demo_files(tmp_path, n_reviews=2000)
    cfg = load_dataset_config(write_config(tmp_path, "amazon2018", files, k_core=400))
    result = run(cfg, storage_root, instance)
    assert not result.success
    assert any("no overlapping users left after filtering" in m and "k_core=400" in m
               for m in failure_messages(result))
    assert materialized(instance, "interactions") == 1
    assert all(materialized(instance, key) == 0 for key in
               ("filtered_interactions", "filtered_items", "item_catalog", "sequences"))


def test_missing_raw_file_is_named(tmp_path, storage_root, instance):
    files = demo_files(tmp_path, n_reviews=2000)
    files["A"][1].unlink()
    cfg = load_dataset_config(write_config(tmp_path, "amazon2018", files))
    result = run(cfg, storage_root, instance)
    assert any(f"{files['A'][1]} does not exist" in m for m in failure_messages(result))
    assert all(materialized(instance, key) == 0 for key in DOWNSTREAM)


@pytest.mark.slow
@pytest.mark.realdata
@requires_llmcdsr()
def test_llmcdsr_release_flows_with_its_own_split(storage_root, instance):
    from pipeline.settings import PROJECT_ROOT

    cfg = load_dataset_config(PROJECT_ROOT / "configs" / "food_kitchen_llmcdsr.yaml")
    assert cfg.release_dir == LLMCDSR_DIR.resolve()
    result = run(dataclasses.replace(cfg, history_policy="strict"), storage_root, instance)
    assert result.success, failure_messages(result)
    sequences = stored(storage_root, "sequences")
    counts = dict(sequences.group_by("split").len().iter_rows())
    assert counts == {"train": 5_472 + 38_191 + 7_501, "valid": 960, "test": 937}
    assert stored(storage_root, "item_catalog").height == 8_661 + 27_637
    assert stored(storage_root, "filtered_interactions").equals(stored(storage_root,
                                                                       "interactions"))

"""Running the first stages (raw files to sequences) in process, on files written for a test."""

import gzip
import json
from pathlib import Path

import dagster as dg
import polars as pl

from app.definitions import build_definitions
from models.data import synthetic
from models.data.schema import INTERACTIONS, ITEM_CATALOG, ITEMS, QUARANTINE, SEQUENCES
from pipeline import storage

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

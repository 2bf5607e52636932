"""Stage 1b: raw files -> interactions, items and quarantine (one pass, three assets).

One multi-asset because the three tables come out of the same read of the raw
files (tens of GB for the real dumps); each is still its own asset key, with its
own data version. It is subsettable: a selection that names one table (``--select
items``, or ``*sequences`` in the UI) still reads the files once and publishes only
the tables selected, so users never have to add the siblings by hand. For the
LLMCDSR release the importer produces the same tables. Nothing is published unless
the whole read succeeds, so a truncated file leaves every downstream asset untouched.
"""

import shutil
from pathlib import Path

import dagster as dg
import polars as pl

from assets import groups
from models.data import ingest, llmcdsr
from models.data.errors import UnusableDataError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.io_managers import VersionStore
from pipeline.storage import TableFile
from pipeline.versioning import code_version

TABLES = ("interactions", "items", "quarantine")
DESCRIPTIONS = {
    "interactions": "Every valid review of both domains: user, item, timestamp, rating, domain.",
    "items": "Sanitized metadata of every reviewed item: title, category, brand, text.",
    "quarantine": "Every record set aside while reading, with its file, line and reason.",
}


def keyed(result: dg.MaterializeResult, key: str) -> dg.MaterializeResult:
    """Address a published result to one output of a multi-asset."""
    return dg.MaterializeResult(asset_key=dg.AssetKey(key), value=result.value,
                                data_version=result.data_version, metadata=result.metadata)


def domain_files(manifest: pl.DataFrame, root: Path) -> list[ingest.DomainFiles]:
    """List the (reviews, meta) files of each domain from the raw_sources manifest.

    Relative paths (the generated demo corpus) are under the storage ``root``.
    """
    files = []
    for domain in ("A", "B"):
        listed = manifest.filter(pl.col("domain") == domain).iter_rows(named=True)
        rows = {r["role"]: r for r in listed}
        files.append(ingest.DomainFiles(domain, Path(rows["reviews"]["path"]),
                                        Path(rows["meta"]["path"]), rows["reviews"]["format"],
                                        base=root))
    return files


def _tables(cfg: DatasetConfig, manifest: pl.DataFrame, root: Path,
            scratch: Path) -> tuple[dict[str, pl.DataFrame | TableFile], dict]:
    """The three tables (the Amazon interactions as a file in ``scratch``) and summary stats."""
    if cfg.format == "llmcdsr":
        release_dir = Path(manifest["path"][0]).parent
        release = llmcdsr.import_release(release_dir, cfg.history_policy)
        tables = {"interactions": release.interactions, "items": release.items,
                  "quarantine": release.quarantine}
        stats = {"table2": llmcdsr.table2(release), "release_dir": str(release_dir)}
        return tables, stats
    result = ingest.ingest_pair(domain_files(manifest, root), workdir=scratch)
    tables = {"interactions": TableFile(result.interactions_file), "items": result.items,
              "quarantine": result.quarantine}
    return tables, ingest.summary(result)


def _users(interactions: pl.DataFrame | TableFile, stats: dict) -> int:
    """Distinct users; for a file, from the per-domain counts the ingest made on the way."""
    if isinstance(interactions, pl.DataFrame):
        return interactions["user"].n_unique()
    return sum(d["users"] for d in stats["per_domain"].values()) - stats["overlapping_users"]


def _publish(context: dg.AssetExecutionContext, store: VersionStore, cfg: DatasetConfig,
             raw_sources: pl.DataFrame, scratch: Path):
    """Read the files and yield the selected tables' results; ``scratch`` holds big files."""
    with user_errors(UnusableDataError):
        tables, stats = _tables(cfg, raw_sources, store.path(), scratch)
    quarantine = tables["quarantine"]
    reasons = dict(quarantine.group_by("reason").len().sort("reason").iter_rows())
    if quarantine.height:
        context.log.warning(f"{tables['quarantine'].height} records quarantined: {reasons}")
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    if "interactions" in selected:
        users = _users(tables["interactions"], stats)
        yield keyed(store.publish(tables["interactions"], users=users,
                                  summary=dg.MetadataValue.json(stats)), "interactions")
    if "items" in selected:
        per_domain = dict(tables["items"].group_by("domain").len().sort("domain").iter_rows())
        yield keyed(store.publish(tables["items"],
                                  per_domain=dg.MetadataValue.json(per_domain)), "items")
    if "quarantine" in selected:
        yield keyed(store.publish(quarantine, by_reason=dg.MetadataValue.json(reasons),
                                  quarantined=quarantine.height), "quarantine")


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    version = code_version("ingest2", cfg.format)

    @dg.multi_asset(
        outs={name: dg.AssetOut(group_name=groups.RAW, code_version=version, is_required=False,
                                description=DESCRIPTIONS[name], kinds={"polars", "parquet"})
              for name in TABLES},
        name="ingest",
        can_subset=True,
    )
    def ingest_tables(context: dg.AssetExecutionContext, store: VersionStore,
                      raw_sources: pl.DataFrame):
        """Read the raw files once into interactions, items and quarantine."""
        scratch = store.scratch()
        try:
            yield from _publish(context, store, cfg, raw_sources, scratch)
        finally:
            shutil.rmtree(scratch, ignore_errors=True)

    return [ingest_tables]

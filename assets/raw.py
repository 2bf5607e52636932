"""Stage 1a: the raw files a dataset is built from, as a fingerprinted manifest.

The manifest, not the files, is the asset: real dumps stay where the user keeps
them (tens of GB), and their fingerprints make a changed dump mark everything
downstream unsynced. For the synthetic demo the files are generated here first,
into a content-addressed folder of the version store.
"""

import dagster as dg
import polars as pl

from assets import groups
from models.data import synthetic
from models.data.sources import fingerprint_file
from pipeline import storage
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.io_managers import NEEDS, VersionStore
from pipeline.versioning import code_version

LLMCDSR_FILES = ("num.txt", "instance_num.txt", "item_set_A.pkl", "item_set_B.pkl", "text_A.pkl",
                 "text_B.pkl", "train_A.txt", "train_B.txt", "train_overlap.txt", "valid.txt",
                 "test.txt", "candidate_generate_A_icl.txt", "candidate_generate_B_icl.txt")


def _source_rows(cfg: DatasetConfig, store: VersionStore, log) -> tuple[list[dict], list[str]]:
    """(domain, role, path) of every input file, and the version folders the manifest needs.

    The demo corpus is generated into a version folder of its own, named relative to the
    storage root so that the manifest's version is the same wherever storage lives (user files
    keep their absolute paths). That folder is listed so that ``gc`` keeps it.
    """
    if cfg.format == "synthetic":
        scratch = store.scratch()
        truth = synthetic.generate(cfg.synthetic, scratch)
        written = storage.write(store.path(), ["demo_corpus"], storage.FileTree(scratch)) / "files"
        log.info(f"demo corpus: {truth.n_reviews_written} reviews in {written}")
        folder = written.relative_to(store.path())
        fmt = "amazon2018"
        return [
            {"domain": key, "role": role, "format": fmt,
             "path": str(folder / (f"{src.category}.json.gz" if role == "reviews"
                                   else f"meta_{src.category}.json.gz"))}
            for key, src in cfg.domains.items() for role in ("reviews", "meta")
        ], [str(folder.parent)]
    if cfg.format == "llmcdsr":
        return [{"domain": "AB", "role": name, "format": "llmcdsr", "path": str(cfg.release_dir / name)}
                for name in LLMCDSR_FILES], []
    return [{"domain": key, "role": role, "format": cfg.format, "path": str(getattr(src, role))}
            for key, src in cfg.domains.items() for role in ("reviews", "meta")], []


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    @dg.asset(
        group_name=groups.RAW,
        code_version=code_version("raw1", cfg.format, cfg.domains, cfg.release_dir,
                                  cfg.synthetic if cfg.format == "synthetic" else None),
        kinds={"polars", "parquet"},
    )
    def raw_sources(context: dg.AssetExecutionContext, store: VersionStore) -> dg.MaterializeResult:
        """Manifest of the raw review and metadata files with their fingerprints."""
        with user_errors():
            rows, needs = _source_rows(cfg, store, context.log)
            for row in rows:
                row["fingerprint"] = fingerprint_file(store.path() / row["path"])
        manifest = pl.DataFrame(rows)
        return store.publish(manifest, dataset=cfg.name, format=cfg.format,
                             files=dg.MetadataValue.json(rows), **{NEEDS: dg.MetadataValue.json(needs)})

    return [raw_sources]

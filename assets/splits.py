"""Stage 1d: the paper's cross-domain split into item_catalog and sequences.

For raw Amazon data the split is computed from the filtered tables; for the
LLMCDSR release the release's own item indices and train/valid/test assignment
are kept (only the history policy of held-out users applies), so the assets read
the release listed in raw_sources. Either way the asset keys and contracts are
the same, and the checks below guard both. Like ``ingest``, the multi-asset is
subsettable: selecting one of the two tables computes the split once and publishes
only that table.
"""

from pathlib import Path

import dagster as dg
import polars as pl

from assets import groups
from assets.ingest import keyed
from models.data import llmcdsr, split
from models.data.errors import UnusableDataError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.io_managers import VersionStore
from pipeline.versioning import code_version

DESCRIPTIONS = {
    "item_catalog": "Every kept item with its 0-based index within its domain, title and text.",
    "sequences": "One chronological sequence per user with its split, kind, target and domains.",
}


def _split_config(cfg: DatasetConfig) -> split.SplitConfig:
    return split.SplitConfig(cfg.train_fraction, cfg.seed, cfg.history_policy)


def _stats(sequences: pl.DataFrame) -> dict:
    counts = sequences.group_by("split", "kind").len().sort("split", "kind")
    held = sequences.filter(pl.col("split") != "train").group_by("split", "target_domain").len()
    return {
        "sequences": {f"{s}/{k}": n for s, k, n in counts.iter_rows()},
        "held_out_targets": {f"{s}/{d}": n
                             for s, d, n in held.sort("split", "target_domain").iter_rows()},
        "mean_history": round(float(sequences["items"].list.len().mean() or 0.0), 3),
    }


def _publish(context: dg.AssetExecutionContext, store: VersionStore, split_cfg: split.SplitConfig,
             catalog: pl.DataFrame, sequences: pl.DataFrame):
    stats = _stats(sequences)
    context.log.info(f"split: {stats['sequences']}")
    selected = {key.to_user_string() for key in context.selected_asset_keys}
    if "item_catalog" in selected:
        per_domain = dict(catalog.group_by("domain").len().sort("domain").iter_rows())
        yield keyed(store.publish(catalog, per_domain=dg.MetadataValue.json(per_domain)),
                    "item_catalog")
    if "sequences" in selected:
        yield keyed(store.publish(sequences, history_policy=split_cfg.history_policy,
                                  seed=split_cfg.seed, train_fraction=split_cfg.train_fraction,
                                  summary=dg.MetadataValue.json(stats)), "sequences")


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    split_cfg = _split_config(cfg)
    release = cfg.format == "llmcdsr"
    outs = {name: dg.AssetOut(group_name=groups.PREPARE, description=DESCRIPTIONS[name], is_required=False,
                              code_version=code_version("split1", split_cfg, release),
                              kinds={"polars", "parquet"})
            for name in DESCRIPTIONS}
    if release:
        @dg.multi_asset(outs=outs, name="split", can_subset=True)
        def split_release(context: dg.AssetExecutionContext, store: VersionStore,
                          raw_sources: pl.DataFrame):
            """Keep the release's own item indices and train/valid/test assignment."""
            folder = Path(raw_sources["path"][0]).parent
            with user_errors(UnusableDataError):
                imported = llmcdsr.import_release(folder, split_cfg.history_policy)
            yield from _publish(context, store, split_cfg, imported.item_catalog,
                                imported.sequences)

        return [split_release]

    @dg.multi_asset(outs=outs, name="split", can_subset=True)
    def split_tables(context: dg.AssetExecutionContext, store: VersionStore,
                     filtered_interactions: pl.DataFrame, filtered_items: pl.DataFrame):
        """Split users into train/valid/test sequences and index the kept items."""
        with user_errors(UnusableDataError):
            catalog, sequences = split.make_split(filtered_interactions, filtered_items, split_cfg)
        yield from _publish(context, store, split_cfg, catalog, sequences)

    return [split_tables]


def build_checks(cfg: DatasetConfig) -> list[dg.AssetChecksDefinition]:
    strict = cfg.history_policy == "strict"

    @dg.asset_check(asset="sequences", blocking=True)
    def no_held_out_user_in_training(sequences: pl.DataFrame) -> dg.AssetCheckResult:
        """No validation or test user appears in training (and every user has one row)."""
        leaked = split.leakage(sequences)
        repeated = sequences.height - sequences["user"].n_unique()
        return dg.AssetCheckResult(passed=not leaked and repeated == 0,
                                   metadata={"leaked_users": len(leaked),
                                             "examples": ", ".join(leaked[:5]),
                                             "repeated_users": repeated})

    @dg.asset_check(asset="sequences", blocking=True)
    def held_out_histories_in_source_domain(sequences: pl.DataFrame) -> dg.AssetCheckResult:
        """Every validation/test history is non-empty and (strict) lies in the source domain."""
        found = split.history_violations(sequences, strict)
        return dg.AssetCheckResult(passed=not any(found.values()),
                                   metadata={**found, "history_policy": cfg.history_policy})

    return [no_held_out_user_in_training, held_out_histories_in_source_domain]

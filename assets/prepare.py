"""Stage 1c: the time window and iterative k-core of the paper (section 4.1.1).

The LLMCDSR release is already filtered by its authors, so for it both assets
pass the tables through unchanged (same content, same data version) and the
k-core check, which would test a property the release never promised, is not built.
"""

import dagster as dg
import polars as pl

from assets import groups
from models.data import filtering
from models.data.errors import UnusableDataError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.io_managers import VersionStore
from pipeline.versioning import code_version


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    passthrough = cfg.format == "llmcdsr"
    window = None if passthrough else cfg.window_days
    k = 1 if passthrough else cfg.k_core

    @dg.asset(group_name=groups.PREPARE, kinds={"polars", "parquet"},
              code_version=code_version("filter1", passthrough, window, k))
    def filtered_interactions(context: dg.AssetExecutionContext, store: VersionStore,
                              interactions: pl.DataFrame) -> dg.MaterializeResult:
        """Interactions in the newest ``window_days`` of the pair, reduced to their k-core."""
        with user_errors(UnusableDataError):
            kept, stats = filtering.filter_pair(interactions, window, k)
        context.log.info(f"filtering kept {kept.height}/{interactions.height} interactions "
                         f"({stats['kcore_rounds']} k-core rounds)")
        return store.publish(kept, **{k_: v for k_, v in stats.items() if k_ != "input"},
                             window_days=str(window), k_core=k, passthrough=passthrough)

    @dg.asset(group_name=groups.PREPARE, kinds={"polars", "parquet"},
              code_version=code_version("filter1"))
    def filtered_items(store: VersionStore, items: pl.DataFrame,
                       filtered_interactions: pl.DataFrame) -> dg.MaterializeResult:
        """Items that still have interactions after filtering."""
        kept = filtering.filter_items(items, filtered_interactions)
        per_domain = dict(kept.group_by("domain").len().sort("domain").iter_rows())
        return store.publish(kept, per_domain=dg.MetadataValue.json(per_domain),
                             fraction_kept=round(kept.height / max(items.height, 1), 6))

    return [filtered_interactions, filtered_items]


def build_checks(cfg: DatasetConfig) -> list[dg.AssetChecksDefinition]:
    if cfg.format == "llmcdsr":
        return []

    @dg.asset_check(asset="filtered_interactions", blocking=True)
    def every_user_and_item_has_k_interactions(
            filtered_interactions: pl.DataFrame) -> dg.AssetCheckResult:
        """Every remaining user and item has at least k interactions (the k-core holds)."""
        found = filtering.kcore_violations(filtered_interactions, cfg.k_core)
        passed = found["users_below_k"] == 0 and found["items_below_k"] == 0
        return dg.AssetCheckResult(passed=passed, metadata={**found, "k": cfg.k_core})

    return [every_user_and_item_has_k_interactions]

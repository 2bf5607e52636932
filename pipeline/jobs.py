"""Jobs over the asset graph. More arrive with the stages (issue: operations)."""

import dagster as dg

full_rebuild = dg.define_asset_job(
    "full_rebuild",
    selection=dg.AssetSelection.all(),
    description="Materialize every asset of the selected dataset, from raw files to the report.",
)

pseudo_refresh = dg.define_asset_job(
    "pseudo_refresh",
    selection=dg.AssetSelection.assets("pseudo_generations").downstream(),
    description="Re-run the LLM pseudo-overlap stage and everything downstream "
    "(after a prompt, model or sampling change).",
)

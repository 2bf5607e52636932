"""Jobs over the asset graph: the full rebuild, the pseudo stage after a prompt edit, evaluation, the sweep."""

import dagster as dg

from assets import groups

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

evaluate = dg.define_asset_job(
    "evaluate",
    selection=dg.AssetSelection.groups(groups.BASELINES, groups.EVALUATION)
    - dg.AssetSelection.key_substring("sweep"),
    description="Sample the candidate lists, train and rank the baselines, rank every trained "
    "LGCD variant, and write the report (Tables 1 and 3, significance, plots).",
)

sweep = dg.define_asset_job(
    "sweep",
    selection=dg.AssetSelection.key_substring("sweep") | dg.AssetSelection.assets("report"),
    description="Figure 3: train one LGCD per nK / T / lambda value of evaluation.sweep, rank "
    "them, and refresh the report's sensitivity curves.",
)

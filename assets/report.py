"""Stage 6: the report, the paper's Tables 1 and 3 (and Figure 3) rebuilt from the evaluation.

Stored as Parquet tables (per-seed results, mean ± std summary, paper comparison,
significance, sweep points, each with a ``protocol`` column); the Dagster metadata shows
the same as Markdown tables and inline PNG plots, so the UI reads like the paper's
section 4. Table 1 is shown once per candidate protocol (``table1`` the primary one,
``table1_<protocol>`` the others); everything else is the primary protocol's, except the
paper comparison, which is always the paper's own protocol ("all").
"""

import dagster as dg
import numpy as np
import polars as pl

from assets import groups
from assets.sweep import ASSET as SWEEP_ASSET
from models.evaluation.candidates import describe_pool
from models.evaluation.config import EvaluationConfig
from models.evaluation.plan import model_name
from models.report import tables
from models.report.comparison import paper_comparison, paper_comparison_markdown, paper_tables_markdown
from models.report.figures import metric_bars_png, png_markdown, sensitivity_png
from models.report.significance import (
    significance_markdown,
    significance_table,
    significance_verdict,
    significance_vs,
)
from models.report.sweep import sweep_markdown, sweep_metrics
from pipeline.config import DatasetConfig
from pipeline.io_managers import VersionStore
from pipeline.versioning import code_version


def _image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(png_markdown(png, alt))


def _tables_meta(summary: pl.DataFrame, models: list[str], table1: list[str], table3: list[str],
                 ev: EvaluationConfig, names: dict[str, str]) -> dict:
    """Table 1 per protocol, every cut-off, Table 3 and the metric bars (the primary protocol)."""
    primary = ev.primary

    def table1_of(protocol: str) -> dg.MetadataValue:
        return dg.MetadataValue.md(tables.table1_section(summary, table1, names, protocol, ev.n_negatives))

    return {
        "table1": table1_of(primary),
        **{f"table1_{p}": table1_of(p) for p in ev.protocols[1:]},
        "table1_all_cutoffs": dg.MetadataValue.md(
            tables.table_all_cutoffs_markdown(summary, models, names, protocol=primary)),
        "table3": dg.MetadataValue.md(tables.table3_markdown(
            summary, [m for m in table3 if m in models], names, protocol=primary)),
        "metric_bars": _image(metric_bars_png(summary.filter(pl.col("protocol") == primary),
                                              models, names), "HR@10 and NDCG@10"),
    }


def _significance(ranks: pl.DataFrame, baselines: list[str], best: str, ev: EvaluationConfig,
                  names: dict[str, str], meta: dict) -> pl.DataFrame:
    """LGCD against every baseline: adds the tests and the verdict under Table 1 to ``meta``."""
    tests = significance_vs(ranks, "lgcd", baselines, ev.permutations, protocol=ev.primary)
    meta["significance"] = dg.MetadataValue.md(
        significance_markdown(tests, "lgcd", best, names, ev.primary))
    verdict = significance_verdict(tests, "lgcd")
    meta["table1"] = dg.MetadataValue.md(f"{meta['table1'].value}\n\n{verdict}")
    meta["p_value_vs_best_baseline"] = (tests[best]["all"].p_value
                                        if "all" in tests[best] else np.nan)
    meta["p_values_pooled"] = dg.MetadataValue.json(
        {b: t["all"].p_value for b, t in tests.items() if "all" in t})
    return significance_table(tests, "lgcd", ev.primary)


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    ev = cfg.evaluation
    has_sweep = ev.sweep is not None
    ins = {"sweep": dg.AssetIn(key=SWEEP_ASSET)} if has_sweep else {}
    names = tables.domain_names(cfg.domain_categories())
    table3 = tables.table3_models(cfg.lgcd.variants)
    by_source = tables.pseudo_source_models(cfg.lgcd.variants)
    sources = {model_name(v.name): v.pseudo_source for v in cfg.lgcd.variants}
    others = [model_name(v.name) for v in cfg.lgcd.variants
              if model_name(v.name) not in {*table3, *by_source}]
    # the published numbers are for the LLMCDSR release of Food-Kitchen, not for other splits
    compare = cfg.format == "llmcdsr" and tables.is_food_kitchen(cfg.domain_categories())

    @dg.asset(group_name=groups.EVALUATION, ins=ins, kinds={"parquet", "matplotlib"},
              code_version=code_version("report3", ev.permutations, table3, by_source, others,
                                        compare, names, ev.protocols, ev.n_negatives))
    def report(context: dg.AssetExecutionContext, store: VersionStore,
               evaluation: dict[str, pl.DataFrame], **sweep: pl.DataFrame) -> dg.MaterializeResult:
        """Tables 1 and 3 (mean ± std over seeds), significance, plots and the paper's numbers."""
        ranks = evaluation["ranks"]
        summary = tables.summarize(ranks)
        primary = ev.primary
        models = ranks["model"].unique(maintain_order=True).to_list()
        baselines = [m for m in models if not tables.is_lgcd(m)]
        meta: dict = {
            "protocol": describe_pool(primary, ev.n_negatives),
            "protocols": dg.MetadataValue.json(list(ev.protocols)),
            "seeds": dg.MetadataValue.json(sorted(ranks["seed"].unique().to_list())),
            **_tables_meta(summary, models, baselines + (["lgcd"] if "lgcd" in models else []),
                           table3, ev, names),
        }
        if len([m for m in by_source if m in models]) > 1:
            meta["pseudo_sources"] = dg.MetadataValue.md(tables.pseudo_sources_markdown(
                summary, [m for m in by_source if m in models], sources, names,
                with_paper=compare and primary == "all", protocol=primary))
        if [m for m in others if m in models]:
            meta["other_lgcd_variants"] = dg.MetadataValue.md(tables.table3_markdown(
                summary, [m for m in others if m in models], names, protocol=primary))
        stored = {"results": evaluation["metrics"], "summary": summary}
        best = tables.best_baseline(summary, baselines, protocol=primary)
        if best is not None and "lgcd" in models:
            stored["significance"] = _significance(ranks, baselines, best, ev, names, meta)
        if compare and "all" in ev.protocols:  # the paper's numbers are for its own protocol
            comparison = paper_comparison(summary, protocol="all")
            meta["paper_comparison"] = dg.MetadataValue.md(
                f"{tables.protocol_heading(summary, 'all', ev.n_negatives, names)}\n\n"
                f"{paper_comparison_markdown(comparison, names)}")
            meta["paper_published"] = dg.MetadataValue.md(paper_tables_markdown(names))
            stored["paper_comparison"] = comparison
        if has_sweep:
            points = sweep_metrics(sweep["sweep"])
            stored["sweep"] = points
            meta["figure3"] = dg.MetadataValue.md(sweep_markdown(points, names, primary))
            meta["figure3_plot"] = _image(
                sensitivity_png(points.filter(pl.col("protocol") == primary), names), "sensitivity")
        context.log.info(f"report: {len(models)} models, best baseline {best}")
        return store.publish(stored, **meta)

    return [report]

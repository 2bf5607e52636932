"""Stage 6: the report, the paper's Tables 1 and 3 (and Figure 3) rebuilt from the evaluation.

Stored as Parquet tables (per-seed results, mean ± std summary, paper comparison,
significance, sweep points, each with a ``protocol`` column); the Dagster metadata shows
the same as Markdown tables and inline PNG plots, so the UI reads like the paper's
section 4. Table 1 is shown once per candidate protocol (``table1`` the primary one,
``table1_<protocol>`` the others); everything else is the primary protocol's, except the
paper comparison, which is always the paper's own protocol ("all").
"""

import base64

import dagster as dg
import numpy as np
import polars as pl

from assets import groups
from assets.sweep import ASSET as SWEEP_ASSET
from models.evaluation.candidates import describe_pool
from models.evaluation.plan import model_name
from models.report.figures import metric_bars_png, sensitivity_png
from models.report.tables import (
    best_baseline,
    domain_names,
    is_food_kitchen,
    is_lgcd,
    paper_comparison,
    paper_comparison_markdown,
    paper_tables_markdown,
    protocol_heading,
    pseudo_source_models,
    pseudo_sources_markdown,
    significance_markdown,
    significance_verdict,
    significance_vs,
    summarize,
    sweep_markdown,
    sweep_metrics,
    table1_markdown,
    table3_markdown,
    table3_models,
    table_all_cutoffs_markdown,
)
from pipeline.config import DatasetConfig
from pipeline.io_managers import VersionStore
from pipeline.versioning import code_version


def _image(png: bytes, alt: str) -> dg.MetadataValue:
    return dg.MetadataValue.md(f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})")


def _significance_table(tests: dict, model: str, protocol: str) -> pl.DataFrame:
    """One row per (baseline, target domain) of :func:`significance_vs`'s tests."""
    rows = [{"model": model, "baseline": baseline, "protocol": protocol, "target_domain": d,
             "users": t.n,
             "ndcg@10_model": t.mean_a, "ndcg@10_baseline": t.mean_b, "diff": t.diff,
             "wins": t.wins, "losses": t.losses, "p_value": t.p_value,
             "permutations": t.permutations}
            for baseline, by_domain in tests.items() for d, t in by_domain.items()]
    return pl.DataFrame(rows) if rows else pl.DataFrame({"model": [], "p_value": []},
                                                        schema={"model": pl.String,
                                                                "p_value": pl.Float64})


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    ev = cfg.evaluation
    has_sweep = ev.sweep is not None
    ins = {"sweep": dg.AssetIn(key=SWEEP_ASSET)} if has_sweep else {}
    names = domain_names(cfg.domain_categories())
    table3 = table3_models(cfg.lgcd.variants)
    by_source = pseudo_source_models(cfg.lgcd.variants)
    sources = {model_name(v.name): v.pseudo_source for v in cfg.lgcd.variants}
    others = [model_name(v.name) for v in cfg.lgcd.variants
              if model_name(v.name) not in {*table3, *by_source}]
    # the published numbers are for the LLMCDSR release of Food-Kitchen, not for other splits
    compare = cfg.format == "llmcdsr" and is_food_kitchen(cfg.domain_categories())

    @dg.asset(group_name=groups.EVALUATION, ins=ins, kinds={"parquet", "matplotlib"},
              code_version=code_version("report3", ev.permutations, table3, by_source, others,
                                        compare, names, ev.protocols, ev.n_negatives))
    def report(context: dg.AssetExecutionContext, store: VersionStore,
               evaluation: dict[str, pl.DataFrame], **sweep: pl.DataFrame) -> dg.MaterializeResult:
        """Tables 1 and 3 (mean ± std over seeds), significance, plots and the paper's numbers."""
        ranks = evaluation["ranks"]
        summary = summarize(ranks)
        primary = ev.primary
        models = ranks["model"].unique(maintain_order=True).to_list()
        baselines = [m for m in models if not is_lgcd(m)]
        table1 = baselines + (["lgcd"] if "lgcd" in models else [])

        def table1_of(protocol: str) -> dg.MetadataValue:
            return dg.MetadataValue.md(
                f"{protocol_heading(summary, protocol, ev.n_negatives, names)}\n\n"
                f"{table1_markdown(summary, table1, names, protocol=protocol)}")

        meta: dict = {
            "protocol": describe_pool(primary, ev.n_negatives),
            "protocols": dg.MetadataValue.json(list(ev.protocols)),
            "seeds": dg.MetadataValue.json(sorted(ranks["seed"].unique().to_list())),
            "table1": table1_of(primary),
            **{f"table1_{p}": table1_of(p) for p in ev.protocols[1:]},
            "table1_all_cutoffs": dg.MetadataValue.md(
                table_all_cutoffs_markdown(summary, models, names, protocol=primary)),
            "table3": dg.MetadataValue.md(table3_markdown(
                summary, [m for m in table3 if m in models], names, protocol=primary)),
            "metric_bars": _image(metric_bars_png(summary.filter(pl.col("protocol") == primary),
                                                  models, names), "HR@10 and NDCG@10"),
        }
        if len([m for m in by_source if m in models]) > 1:
            meta["pseudo_sources"] = dg.MetadataValue.md(pseudo_sources_markdown(
                summary, [m for m in by_source if m in models], sources, names,
                with_paper=compare and primary == "all", protocol=primary))
        if [m for m in others if m in models]:
            meta["other_lgcd_variants"] = dg.MetadataValue.md(table3_markdown(
                summary, [m for m in others if m in models], names, protocol=primary))
        tables = {"results": evaluation["metrics"], "summary": summary}
        best = best_baseline(summary, baselines, protocol=primary)
        if best is not None and "lgcd" in models:
            tests = significance_vs(ranks, "lgcd", baselines, ev.permutations, protocol=primary)
            meta["significance"] = dg.MetadataValue.md(
                significance_markdown(tests, "lgcd", best, names, primary))
            verdict = significance_verdict(tests, "lgcd")
            meta["table1"] = dg.MetadataValue.md(f"{meta['table1'].value}\n\n{verdict}")
            meta["p_value_vs_best_baseline"] = (tests[best]["all"].p_value
                                                if "all" in tests[best] else np.nan)
            meta["p_values_pooled"] = dg.MetadataValue.json(
                {b: t["all"].p_value for b, t in tests.items() if "all" in t})
            tables["significance"] = _significance_table(tests, "lgcd", primary)
        if compare and "all" in ev.protocols:  # the paper's numbers are for its own protocol
            comparison = paper_comparison(summary, protocol="all")
            meta["paper_comparison"] = dg.MetadataValue.md(
                f"{protocol_heading(summary, 'all', ev.n_negatives, names)}\n\n"
                f"{paper_comparison_markdown(comparison, names)}")
            meta["paper_published"] = dg.MetadataValue.md(paper_tables_markdown(names))
            tables["paper_comparison"] = comparison
        if has_sweep:
            points = sweep_metrics(sweep["sweep"])
            tables["sweep"] = points
            meta["figure3"] = dg.MetadataValue.md(sweep_markdown(points, names, primary))
            meta["figure3_plot"] = _image(
                sensitivity_png(points.filter(pl.col("protocol") == primary), names), "sensitivity")
        context.log.info(f"report: {len(models)} models, best baseline {best}")
        return store.publish(tables, **meta)

    return [report]

"""The report's tables: mean ± std over seeds, the paper's Table 1 and 3 layouts, the paper comparison.

Everything here is a pure function of the per-user rank table (models/evaluation/ranking.py
``RANK_SCHEMA``) so the report asset stays a thin wrapper and tests can check the
Markdown directly. Ranks carry one row per candidate protocol (models/evaluation/candidates.py):
every table is drawn for one protocol (``protocol=None``: the primary one, the first
in the table), so numbers of different candidate lists never share a cell.
"""

from collections.abc import Sequence

import numpy as np
import polars as pl

from models.evaluation.candidates import describe_pool
from models.evaluation.plan import model_name
from models.evaluation.ranking import metric_rows
from models.evaluation.stats import PairedTest, mean_std, paired_permutation_test
from models.lgcd.config import ABLATIONS
from models.metrics import KS, ndcg_per_user, ranking_metrics
from models.report.paper import (
    PAPER_NAMES,
    TABLE1_COLUMNS,
    TABLE1_FOOD_KITCHEN,
    TABLE3_COLUMNS,
    TABLE3_FOOD_KITCHEN,
)

METRICS = tuple(f"{m}@{k}" for k in KS for m in ("hr", "ndcg"))
TABLE1_METRICS = ("hr@5", "hr@10", "ndcg@5", "ndcg@10")
TABLE3_METRICS = ("hr@5", "ndcg@5")
LABELS = {"hr": "HR", "ndcg": "NDCG"}
SHORT_DOMAIN_NAMES = {"Grocery_and_Gourmet_Food": "Food", "Home_and_Kitchen": "Kitchen",
                      "Movies_and_TV": "Movie", "Books": "Book"}
# Floors: what a learned model must beat to count as learning anything from the data
# (target_popularity: no personalization; bag: an order-free map of the source history).
FLOORS = ("target_popularity", "bag")
LEARNED_BASELINES = ("sasrec", "gru4rec", "emcdr", "bag")
FLOOR_METRICS = ("hr@10", "ndcg@10")


def is_lgcd(model: str) -> bool:
    return model == "lgcd" or model.startswith("lgcd_")


def domain_names(categories: tuple[str, str]) -> dict[str, str]:
    """Column titles of the target domains, as the paper names them when it does."""
    return {d: SHORT_DOMAIN_NAMES.get(c, c) for d, c in zip(("A", "B"), categories, strict=True)}


def is_food_kitchen(categories: tuple[str, str]) -> bool:
    """The pair of the paper's published Food-Kitchen numbers (A = Food, B = Kitchen)."""
    return tuple(categories) == ("Grocery_and_Gourmet_Food", "Home_and_Kitchen")


def label(metric: str) -> str:
    name, k = metric.split("@")
    return f"{LABELS[name]}@{k}"


def pick_protocol(table: pl.DataFrame, protocol: str | None) -> str | None:
    """``protocol``, or for None the table's primary one (its first protocol; None if empty)."""
    if protocol is not None or table.is_empty():
        return protocol
    return table["protocol"][0]


def summarize(ranks: pl.DataFrame) -> pl.DataFrame:
    """Per (model, protocol, split, target_domain): users, seeds, list size, metrics' mean/std.

    ``candidates`` is the mean list size, mean and std are over seeds; rows keep the
    ranks' order (the primary protocol first).
    """
    per_seed = metric_rows(ranks)
    out = []
    for (model, protocol, split, domain), part in per_seed.group_by(
            ["model", "protocol", "split", "target_domain"], maintain_order=True):
        row = {"model": model, "protocol": protocol, "split": split, "target_domain": domain,
               "users": int(part["users"].max()), "seeds": part.height,
               "candidates": float(part["candidates"].mean())}
        for metric in METRICS:
            row[f"{metric}_mean"], row[f"{metric}_std"] = mean_std(part[metric].to_numpy())
        out.append(row)
    return pl.DataFrame(out)


def _cell(summary: dict, model: str, domain: str, metric: str) -> float | None:
    row = summary.get((model, domain))
    return None if row is None else row[f"{metric}_mean"]


def _rows(summary: pl.DataFrame, split: str, protocol: str | None) -> dict[tuple[str, str], dict]:
    """(model, target_domain) -> summary row of one split and protocol (None: the primary)."""
    protocol = pick_protocol(summary, protocol)
    part = summary.filter((pl.col("split") == split) & (pl.col("protocol") == protocol))
    return {(r["model"], r["target_domain"]): r for r in part.iter_rows(named=True)}


def _markdown_table(summary: pl.DataFrame, models: Sequence[str], columns: Sequence[tuple[str, str]],
                    domain_names: dict[str, str], split: str, protocol: str | None,
                    notes: dict[str, list[str]] | None = None,
                    labels: dict[str, str] | None = None) -> str:
    """Models by rows, (domain, metric) columns.

    ``notes``: extra rows beneath a model's row; ``labels``: a row's name where it is not the
    model's.
    """
    rows = _rows(summary, split, protocol)
    head = "| model | " + " | ".join(f"{domain_names[d]} {label(m)}" for d, m in columns) + " |"
    lines = [head, "|---|" + "---:|" * len(columns)]
    ranking = {}
    for d, m in columns:  # best bold, second underlined (as in the paper)
        values = sorted({v for v in (_cell(rows, x, d, m) for x in models) if v is not None},
                        reverse=True)
        ranking[(d, m)] = values[:2]
    for model in models:
        cells = []
        for d, m in columns:
            row = rows.get((model, d))
            if row is None:
                cells.append("–")
                continue
            mean, std = row[f"{m}_mean"], row[f"{m}_std"]
            text = f"{mean:.4f} ± {std:.4f}"
            top = ranking[(d, m)]
            if top and mean == top[0]:
                text = f"**{text}**"
            elif len(top) > 1 and mean == top[1]:
                text = f"<u>{text}</u>"
            cells.append(text)
        lines.append(f"| {(labels or {}).get(model, model)} | " + " | ".join(cells) + " |")
        for note in (notes or {}).get(model, []):
            lines.append(f"| ⚠ {model} | {note} |" + " |" * (len(columns) - 1))
    return "\n".join(lines)


def floors_of(model: str) -> tuple[str, ...]:
    """The floors a model is checked against: learned ones only, and never itself."""
    if model in LEARNED_BASELINES or is_lgcd(model):
        return tuple(f for f in FLOORS if f != model)  # bag: target_popularity only
    return ()


def floor_warnings(summary: pl.DataFrame, models: Sequence[str], domain_names: dict[str, str],
                   split: str = "test", protocol: str | None = None) -> dict[str, list[str]]:
    """Per model, one message per floor whose HR@10 or NDCG@10 mean it falls below, per domain.

    A learned model below a model without learned parameters is undertrained or reads
    the data misaligned (wrong vocabulary, wrong domain); Table 1 says so beneath its row
    rather than leaving the reader to notice. A floor without rows in the summary warns
    nothing.
    """
    rows = _rows(summary, split, protocol)
    out: dict[str, list[str]] = {}
    for model in models:
        for floor in floors_of(model):
            below = []
            for domain in ("A", "B"):
                ours, base = rows.get((model, domain)), rows.get((floor, domain))
                if ours is None or base is None:
                    continue
                below += [f"{domain_names[domain]} {label(m)} ({ours[f'{m}_mean']:.4f} < "
                          f"{base[f'{m}_mean']:.4f})" for m in FLOOR_METRICS
                          if ours[f"{m}_mean"] < base[f"{m}_mean"]]
            if below:
                out.setdefault(model, []).append(
                    f"below floor {floor} on {', '.join(below)}: undertrained or misaligned")
    return out


def table1_markdown(summary: pl.DataFrame, models: Sequence[str], domain_names: dict[str, str],
                    split: str = "test", protocol: str | None = None) -> str:
    """Table 1 layout: models by rows; HR@5, HR@10, NDCG@5, NDCG@10 per target domain.

    A learned model below a floor (``floor_warnings``) gets a ⚠ row beneath its own.
    """
    columns = [(d, m) for d in ("A", "B") for m in TABLE1_METRICS]
    notes = floor_warnings(summary, models, domain_names, split, protocol)
    return _markdown_table(summary, models, columns, domain_names, split, protocol, notes)


def protocol_heading(summary: pl.DataFrame, protocol: str, n_negatives: int,
                     domain_names: dict[str, str], split: str = "test") -> str:
    """The protocol of a table in words, with the mean effective list size per target domain.

    Under "all" the effective list is the target-domain part of the 1 + n sampled items
    (models/evaluation/candidates.py), so the count is what makes the numbers comparable to others'.
    """
    part = summary.filter((pl.col("split") == split) & (pl.col("protocol") == protocol))
    sizes = [f"{domain_names[d]} {part.filter(pl.col('target_domain') == d)['candidates'].mean():.1f}"
             for d in ("A", "B") if part.filter(pl.col("target_domain") == d).height]
    effective = f"; effective candidates per {split} user: {', '.join(sizes)}" if sizes else ""
    return f"**Protocol `{protocol}`**: {describe_pool(protocol, n_negatives)}{effective}."


def table_all_cutoffs_markdown(summary: pl.DataFrame, models: Sequence[str],
                               domain_names: dict[str, str], split: str = "test",
                               protocol: str | None = None) -> str:
    """Every cut-off (1, 5, 10, 20) for both metrics, per target domain and pooled."""
    names = {**domain_names, "all": "both"}
    columns = [(d, m) for d in ("A", "B", "all") for m in METRICS]
    return _markdown_table(summary, models, columns, names, split, protocol)


def table3_markdown(summary: pl.DataFrame, variants: Sequence[str], domain_names: dict[str, str],
                    split: str = "test", protocol: str | None = None) -> str:
    """Table 3 layout: LGCD variants by rows; HR@5 and NDCG@5 per target domain."""
    columns = [(d, m) for d in ("A", "B") for m in TABLE3_METRICS]
    return _markdown_table(summary, variants, columns, domain_names, split, protocol)


TRAINING_BUDGET = frozenset({"epochs", "patience"})


def table3_models(variants: Sequence) -> list[str]:
    """Result-table names of the configured variants that are Table 3 rows.

    A row is an ablation preset as the paper defines it; only the training budget (epochs,
    patience) may be overridden, which changes how long it trains, not what it is.
    """
    return [model_name(v.name) for v in variants if v.preset in ABLATIONS
            and v.pseudo_source == "llm"  # the others are the pseudo_sources table's rows
            and (v.name == "full" or set(v.overrides) <= TRAINING_BUDGET)]


def pseudo_source_models(variants: Sequence) -> list[str]:
    """``lgcd`` and the configured variants that differ from it only by ``pseudo_source``."""
    out = [model_name(v.name) for v in variants
           if v.name == "full" or (v.preset == "full" and v.pseudo_source != "llm"
                                   and set(v.overrides) <= TRAINING_BUDGET)]
    return out if len(out) > 1 else []


def pseudo_sources_markdown(summary: pl.DataFrame, models: Sequence[str],
                            sources: dict[str, str], domain_names: dict[str, str],
                            with_paper: bool, split: str = "test",
                            protocol: str | None = None) -> str:
    """What the LLM adds: LGCD with each pseudo source, Table 1's columns, the paper's LGCD.

    ``sources`` maps a model to its pseudo source (llm, retrieval, retrieval_all, none).
    """
    columns = [(d, m) for d in ("A", "B") for m in TABLE1_METRICS]
    labels = {m: f"{m} ({sources[m]})" for m in models}
    lines = _markdown_table(summary, models, columns, domain_names, split, protocol,
                            labels=labels).splitlines()
    if with_paper:
        lines.append("| *paper: LGCD (llm)* | " + " | ".join(
            f"*{v:.4f}*" for v in TABLE1_FOOD_KITCHEN["LGCD"]) + " |")
    return "\n".join(lines)


def paper_comparison(summary: pl.DataFrame, split: str = "test",
                     protocol: str = "all") -> pl.DataFrame:
    """Ours (mean over seeds) beside the paper's Food-Kitchen numbers, for models in both.

    Only the paper's own protocol ("all") is comparable; without it the frame is empty.
    """
    rows = _rows(summary, split, protocol)
    out = []
    for model, paper_name in PAPER_NAMES.items():
        for table, published, columns in (("Table 1", TABLE1_FOOD_KITCHEN, TABLE1_COLUMNS),
                                          ("Table 3", TABLE3_FOOD_KITCHEN, TABLE3_COLUMNS)):
            if paper_name not in published:
                continue
            for (domain, metric), paper in zip(columns, published[paper_name], strict=True):
                ours = rows.get((model, domain))
                if ours is None:
                    continue
                mean = ours[f"{metric}_mean"]
                out.append({"table": table, "model": model, "paper_row": paper_name,
                            "target_domain": domain, "metric": metric, "ours": mean,
                            "ours_std": ours[f"{metric}_std"], "paper": paper,
                            "diff": mean - paper})
    schema = {"table": pl.String, "model": pl.String, "paper_row": pl.String,
              "target_domain": pl.String, "metric": pl.String, "ours": pl.Float64,
              "ours_std": pl.Float64, "paper": pl.Float64, "diff": pl.Float64}
    return pl.DataFrame(out, schema=schema)


def paper_comparison_markdown(comparison: pl.DataFrame, domain_names: dict[str, str]) -> str:
    if comparison.is_empty():
        return "_no model of ours has a row in the paper's tables_"
    lines = ["| table | model (paper row) | domain | metric | ours | paper | ours − paper |",
             "|---|---|---|---|---:|---:|---:|"]
    for r in comparison.iter_rows(named=True):
        lines.append(f"| {r['table']} | {r['model']} ({r['paper_row']}) | "
                     f"{domain_names[r['target_domain']]} | {label(r['metric'])} | "
                     f"{r['ours']:.4f} ± {r['ours_std']:.4f} | {r['paper']:.4f} | "
                     f"{r['diff']:+.4f} |")
    return "\n".join(lines)


def best_baseline(summary: pl.DataFrame, baselines: Sequence[str], metric: str = "ndcg@10",
                  split: str = "test", protocol: str | None = None) -> str | None:
    """Baseline with the highest mean ``metric`` over both target domains pooled."""
    protocol = pick_protocol(summary, protocol)
    part = summary.filter((pl.col("split") == split) & (pl.col("target_domain") == "all")
                          & (pl.col("protocol") == protocol)
                          & pl.col("model").is_in(list(baselines)))
    if part.is_empty():
        return None
    return part.sort([f"{metric}_mean", "model"], descending=[True, False])["model"][0]


def paired_user_ndcg(ranks: pl.DataFrame, model_a: str, model_b: str, domain: str, k: int = 10,
                     split: str = "test", protocol: str | None = None
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Per-user NDCG@k of one protocol averaged over the seeds both models share, paired by user."""
    protocol = pick_protocol(ranks, protocol)
    part = ranks.filter((pl.col("split") == split) & (pl.col("protocol") == protocol))
    if domain != "all":
        part = part.filter(pl.col("target_domain") == domain)
    seeds = set(part.filter(pl.col("model") == model_a)["seed"].to_list()) & set(
        part.filter(pl.col("model") == model_b)["seed"].to_list())
    part = part.filter(pl.col("seed").is_in(sorted(seeds)))
    per_user = (part.with_columns(gain=pl.Series(ndcg_per_user(part["rank"].to_numpy(), k)))
                .group_by("model", "user").agg(pl.col("gain").mean()))
    a = per_user.filter(pl.col("model") == model_a).select("user", a="gain")
    b = per_user.filter(pl.col("model") == model_b).select("user", b="gain")
    paired = a.join(b, on="user", how="inner").sort("user")
    return paired["a"].to_numpy(), paired["b"].to_numpy()


def significance(ranks: pl.DataFrame, model: str, baseline: str, permutations: int,
                 seed: int = 0, protocol: str | None = None) -> dict[str, PairedTest]:
    """Paired permutation test of per-user NDCG@10 (test users), per target domain and pooled.

    One protocol (None: the primary one): the same users under two protocols are not
    independent observations.
    """
    out = {}
    for domain in ("A", "B", "all"):
        a, b = paired_user_ndcg(ranks, model, baseline, domain, protocol=protocol)
        if a.size:
            out[domain] = paired_permutation_test(a, b, permutations, seed)
    return out


def significance_vs(ranks: pl.DataFrame, model: str, baselines: Sequence[str], permutations: int,
                    seed: int = 0, protocol: str | None = None) -> dict[str, dict[str, PairedTest]]:
    """:func:`significance` of ``model`` against each baseline: baseline -> domain -> test.

    Why every baseline and not only the best: "better than popularity" and "better than
    the strongest model" are different claims, and a reader wants both answered.
    """
    return {b: significance(ranks, model, b, permutations, seed, protocol) for b in baselines}


def significance_markdown(tests: dict[str, dict[str, PairedTest]], model: str, best: str | None,
                          domain_names: dict[str, str], protocol: str | None = None) -> str:
    """One table: per baseline (the best one first), per target domain and pooled."""
    names = {**domain_names, "all": "both"}
    under = "" if protocol is None else f" under protocol `{protocol}`"
    lines = [f"Paired sign-flip permutation test, per-user test NDCG@10 (mean over seeds){under}, "
             f"**{model}** vs each baseline (the best baseline, **{best}**, first):", "",
             "| baseline | domain | users | NDCG@10 model | NDCG@10 baseline | difference "
             "| wins/losses | p |",
             "|---|---|---:|---:|---:|---:|---:|---:|"]
    order = sorted(tests, key=lambda b: (b != best, b))
    for baseline in order:
        for domain, t in tests[baseline].items():
            lines.append(f"| {baseline} | {names[domain]} | {t.n} | {t.mean_a:.4f} | "
                         f"{t.mean_b:.4f} | {t.diff:+.4f} | {t.wins}/{t.losses} | "
                         f"{t.p_value:.4g} |")
    return "\n".join(lines)


def significance_verdict(tests: dict[str, dict[str, PairedTest]], model: str,
                         alpha: float = 0.01) -> str:
    """One sentence for under Table 1: which baselines ``model`` beats on the pooled test users."""
    pooled = {b: t["all"] for b, t in tests.items() if "all" in t}
    if not pooled:
        return ""
    better = [b for b, t in pooled.items() if t.diff > 0 and t.p_value < alpha]
    worse = [b for b, t in pooled.items() if t.diff < 0 and t.p_value < alpha]
    tied = [b for b in pooled if b not in better and b not in worse]

    def listing(names: list[str]) -> str:
        return ", ".join(f"{b} (p={pooled[b].p_value:.2g})" for b in sorted(names))

    parts = []
    if better:
        parts.append(f"significantly better than {listing(better)}")
    if worse:
        parts.append(f"significantly worse than {listing(worse)}")
    if tied:
        parts.append(f"not significantly different from {listing(tied)}")
    n = next(iter(pooled.values())).n
    return (f"**{model}** on the {n} pooled test users (paired test of NDCG@10, "
            f"p < {alpha}): " + "; ".join(parts) + ".")


def sweep_metrics(ranks: pl.DataFrame, split: str = "test") -> pl.DataFrame:
    """Figure 3 points: metrics per (param, value, protocol, target_domain) of the sweep's ranks.

    Protocols keep the ranks' order (primary first) within a point.
    """
    out = []
    part = ranks.filter(pl.col("split") == split)
    protocols = {p: i for i, p in enumerate(part["protocol"].unique(maintain_order=True))}
    for (param, value, protocol), group in part.group_by(["param", "value", "protocol"],
                                                         maintain_order=True):
        for domain in ("A", "B", "all"):
            sub = group if domain == "all" else group.filter(pl.col("target_domain") == domain)
            if sub.height:
                out.append({"param": param, "value": float(value), "protocol": protocol,
                            "target_domain": domain, "users": sub.height,
                            **ranking_metrics(sub["rank"].to_numpy())})
    schema = {"param": pl.String, "value": pl.Float64, "protocol": pl.String,
              "target_domain": pl.String, "users": pl.Int64, **{m: pl.Float64 for m in METRICS}}
    order = {"n_k": 0, "T": 1, "lam": 2}  # Figure 3's panel order
    return (pl.DataFrame(out, schema=schema)
            .with_columns(panel=pl.col("param").replace_strict(order, default=len(order)),
                          slot=pl.col("protocol").replace_strict(protocols, default=len(protocols),
                                                                 return_dtype=pl.Int64))
            .sort("panel", "value", "slot", "target_domain").drop("panel", "slot"))


def sweep_markdown(points: pl.DataFrame, domain_names: dict[str, str],
                   protocol: str | None = None) -> str:
    """Figure 3 as a table: HR@5 and NDCG@5 per swept value and target domain, one protocol."""
    protocol = pick_protocol(points, protocol)
    points = points.filter(pl.col("protocol") == protocol)
    lines = ["| parameter | value | " + " | ".join(f"{domain_names[d]} {label(m)}" for d in ("A", "B")
                                                 for m in TABLE3_METRICS) + " |",
             "|---|---:|" + "---:|" * 4]
    for (param, value), group in points.group_by(["param", "value"], maintain_order=True):
        cells = []
        for d in ("A", "B"):
            row = group.filter(pl.col("target_domain") == d)
            cells += [f"{row[m][0]:.4f}" if row.height else "–" for m in TABLE3_METRICS]
        lines.append(f"| {param} | {value:g} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def paper_tables_markdown(domain_names: dict[str, str]) -> str:
    """The paper's published Food-Kitchen Tables 1 and 3, verbatim, for reference."""
    parts = []
    for title, published, columns in (("Table 1", TABLE1_FOOD_KITCHEN, TABLE1_COLUMNS),
                                      ("Table 3", TABLE3_FOOD_KITCHEN, TABLE3_COLUMNS)):
        head = " | ".join(f"{domain_names[d]} {label(m)}" for d, m in columns)
        lines = [f"**{title}** (LGCD paper, Food-Kitchen)", "", f"| method | {head} |",
                 "|---|" + "---:|" * len(columns)]
        lines += [f"| {name} | " + " | ".join(f"{v:.4f}" for v in values) + " |"
                  for name, values in published.items()]
        parts.append("\n".join(lines))
    return "\n\n".join(parts)

"""The report's tables: mean ± std over seeds in the paper's Table 1 and 3 layouts.

Everything here is a pure function of the per-user rank table (models/evaluation/ranking.py
``RANK_SCHEMA``) so the report asset stays a thin wrapper and tests can check the
Markdown directly. Ranks carry one row per candidate protocol (models/evaluation/candidates.py):
every table is drawn for one protocol (``protocol=None``: the primary one, the first
in the table), so numbers of different candidate lists never share a cell. Beside them:
significance.py (paired tests), sweep.py (Figure 3), comparison.py (the paper's numbers).
"""

from collections.abc import Sequence

import polars as pl

from models.evaluation.candidates import describe_pool
from models.evaluation.plan import model_name
from models.evaluation.ranking import metric_rows
from models.evaluation.stats import mean_std
from models.lgcd.config import ABLATIONS
from models.metrics import KS
from models.report.paper import TABLE1_FOOD_KITCHEN

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


def summary_rows(summary: pl.DataFrame, split: str, protocol: str | None) -> dict[tuple[str, str], dict]:
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
    rows = summary_rows(summary, split, protocol)
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
    rows = summary_rows(summary, split, protocol)
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


def table1_section(summary: pl.DataFrame, models: Sequence[str], domain_names: dict[str, str],
                   protocol: str, n_negatives: int, split: str = "test") -> str:
    """Table 1 of one protocol under the heading that states the protocol in words."""
    return (f"{protocol_heading(summary, protocol, n_negatives, domain_names, split)}\n\n"
            f"{table1_markdown(summary, models, domain_names, split, protocol)}")


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

"""Paired significance of one model against the baselines, per target domain and pooled.

The test is a sign-flip permutation test of per-user NDCG@10 (models/evaluation/stats.py),
the users paired across models, each user's gain averaged over the seeds both share.
"""

from collections.abc import Sequence

import numpy as np
import polars as pl

from models.evaluation.stats import PairedTest, paired_permutation_test
from models.metrics import ndcg_per_user
from models.report.tables import pick_protocol


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


def significance_table(tests: dict[str, dict[str, PairedTest]], model: str,
                       protocol: str) -> pl.DataFrame:
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

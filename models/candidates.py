"""Candidate lists for ranking evaluation: the ground truth plus sampled negatives, once per seed.

Why stored: every model, baseline or LGCD variant, is ranked on the identical
lists, so differences between rows of the report are differences between models,
not between negative samples.

Pools (``EvaluationConfig.negatives``):

* ``"all"`` (default, the LGCD paper, section 4.1.1): 999 negatives drawn uniformly
  without replacement from the items of *all participating domains* except the
  ground truth.
* ``"target"`` (LLMCDSR's code): 999 negatives from the target domain only.
* ``"full"``: no sampling; the ground truth is ranked against every target-domain item.

How "all" is scored. Every model in this project recommends for a known target
domain, and none has a score for an item of the other domain that is comparable
to its target scores (LGCD's fused table exists per domain). The ranking code
therefore gives every other-domain negative the score -inf for every model alike:
it never outranks the ground truth, and the rank is taken among the target-domain
negatives only. Under "all" the effective list is 1 + about
999 * N_target / (N_A + N_B - 1) items (Food-Kitchen: ~238 for Food, ~760 for Kitchen),
which is recorded per user (``n_target_negatives``) and in the report.

Each user's list is a pure function of (seed, split, user, target, catalog sizes):
the generator is seeded per user, so adding or removing other users changes no list.
"""

import zlib
from collections.abc import Mapping

import numpy as np
import polars as pl

POOLS = ("all", "target", "full")
CANDIDATE_SCHEMA = {"seed": pl.Int32, "split": pl.String, "user": pl.String,
                    "target_domain": pl.String, "target_item": pl.Int32,
                    "cand_items": pl.List(pl.Int32), "cand_domains": pl.List(pl.String),
                    "n_target_negatives": pl.Int32}
_SPLIT_CODE = {"valid": 1, "test": 2}


def _user_rng(seed: int, split: str, user: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE.get(split, 0), zlib.crc32(user.encode())])


def _negatives(rng: np.random.Generator, universe: int, truth: int, n: int) -> np.ndarray:
    """Distinct ids of range(universe) without ``truth``: n of them, or all when fewer exist."""
    if universe - 1 <= n:
        return np.delete(np.arange(universe), truth)
    picked = np.sort(rng.choice(universe - 1, size=n, replace=False))
    return picked + (picked >= truth)  # skip the ground truth


def sample_candidates(held_out: pl.DataFrame, n_items: Mapping[str, int], n_negatives: int,
                      pool: str, seed: int) -> pl.DataFrame:
    """One candidate row per held-out user: ``cand_items[0]`` is the ground truth.

    held_out: rows with user, split, target_item, target_domain (the valid/test rows of
    ``sequences``). Returns ``CANDIDATE_SCHEMA`` sorted by (split, user); under "full"
    the lists hold the ground truth only and the ranking uses the whole target catalog.
    """
    if pool not in POOLS:
        raise ValueError(f"negative pool {pool!r}; allowed {list(POOLS)}")
    if n_negatives < 1:
        raise ValueError(f"n_negatives={n_negatives}; must be >= 1")
    offset = {"A": 0, "B": n_items["A"]}  # "all": one id space, A items first
    rows = []
    for rec in held_out.sort("split", "user").iter_rows(named=True):
        user, tgt, truth = str(rec["user"]), rec["target_domain"], rec["target_item"]
        if tgt not in n_items or truth is None or not 0 <= truth < n_items[tgt]:
            raise ValueError(f"user {user}: target item {truth} is not an item of domain {tgt!r} "
                             f"(sizes {dict(n_items)})")
        rng = _user_rng(seed, rec["split"], user)
        if pool == "full":
            items, domains = [truth], [tgt]
        elif pool == "target":
            neg = _negatives(rng, n_items[tgt], truth, n_negatives)
            items, domains = [truth, *neg.tolist()], [tgt] * (1 + len(neg))
        else:
            total = n_items["A"] + n_items["B"]
            neg = _negatives(rng, total, offset[tgt] + truth, n_negatives)
            in_b = neg >= n_items["A"]
            items = [truth, *np.where(in_b, neg - n_items["A"], neg).tolist()]
            domains = [tgt, *np.where(in_b, "B", "A").tolist()]
        n_tgt = sum(d == tgt for d in domains) - 1
        rows.append({"seed": seed, "split": rec["split"], "user": user, "target_domain": tgt,
                     "target_item": truth, "cand_items": items, "cand_domains": domains,
                     "n_target_negatives": n_tgt})
    return pl.DataFrame(rows, schema=CANDIDATE_SCHEMA)


def sample_all_seeds(held_out: pl.DataFrame, n_items: Mapping[str, int], n_negatives: int,
                     pool: str, seeds: tuple[int, ...]) -> pl.DataFrame:
    """``sample_candidates`` for each seed, stacked (the ``eval_candidates`` table)."""
    frames = [sample_candidates(held_out, n_items, n_negatives, pool, s) for s in seeds]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)

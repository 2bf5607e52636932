"""Candidate lists for ranking evaluation: the ground truth plus sampled negatives, once per seed.

Why stored: every model, baseline or LGCD variant, is ranked on the identical
lists, so differences between rows of the report are differences between models,
not between negative samples.

Pools (one per evaluation protocol, ``EvaluationConfig.protocols``):

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

Every configured protocol is stored in one table (a ``protocol`` column, in
``evaluation.protocols`` order, so the first, the primary one, leads), and every
trained model is ranked under each of them: the report's tables per protocol differ
only in the lists, never in the models.

Each user's list is a pure function of (seed, split, user, protocol, target, catalog
sizes): the generator is seeded per user, so adding or removing other users (or other
protocols) changes no list. Each pool starts from the same per-user generator state, so a
pool's lists are the ones it had when it was the only one configured.
"""

import zlib
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl

from models.sampling import sample_negatives

POOLS = ("all", "target", "full")
POOL_WORDS = {"all": "1 ground truth + {n} negatives sampled from all participating domains "
                     "(paper 4.1.1); other-domain negatives score -inf for every model",
              "target": "1 ground truth + {n} negatives sampled from the target domain "
                        "(LLMCDSR's code)",
              "full": "the ground truth ranked against every target-domain item"}
CANDIDATE_SCHEMA = {"seed": pl.Int32, "protocol": pl.String, "split": pl.String, "user": pl.String,
                    "target_domain": pl.String, "target_item": pl.Int32,
                    "cand_items": pl.List(pl.Int32), "cand_domains": pl.List(pl.String),
                    "n_target_negatives": pl.Int32}
_SPLIT_CODE = {"valid": 1, "test": 2}


def describe_pool(pool: str, n_negatives: int) -> str:
    """The protocol of ``pool`` in words, for metadata and report headings."""
    return POOL_WORDS[pool].format(n=n_negatives)


def stored_protocols(candidates: pl.DataFrame) -> list[str]:
    """Protocols of a candidate (or rank) table in stored order: the primary one first."""
    return candidates["protocol"].unique(maintain_order=True).to_list()


def protocol_lists(candidates: pl.DataFrame, protocol: str | None = None) -> pl.DataFrame:
    """The rows of one protocol; None: the primary one (the first stored)."""
    protocols = stored_protocols(candidates)
    chosen = protocols[0] if protocol is None and protocols else protocol
    if chosen not in protocols:
        raise ValueError(f"no stored candidates for protocol {chosen!r} (stored: {protocols}); "
                         "re-materialize eval_candidates")
    return candidates.filter(pl.col("protocol") == chosen)


def _user_rng(seed: int, split: str, user: str) -> np.random.Generator:
    return np.random.default_rng([seed, _SPLIT_CODE.get(split, 0), zlib.crc32(user.encode())])


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
    rows = held_out.sort("split", "user").select("split", "user", "target_domain", "target_item")
    items, in_b, n_target = [], [], []
    for split, user, tgt, truth in rows.iter_rows():
        if tgt not in n_items or truth is None or not 0 <= truth < n_items[tgt]:
            raise ValueError(f"user {user}: target item {truth} is not an item of domain {tgt!r} "
                             f"(sizes {dict(n_items)})")
        rng = _user_rng(seed, split, str(user))
        if pool == "full":
            neg = np.zeros(0, dtype=np.int64)
        elif pool == "target":  # lists in id order
            neg = offset[tgt] + np.sort(sample_negatives(rng, n_items[tgt], truth, n_negatives))
        else:
            neg = np.sort(sample_negatives(rng, n_items["A"] + n_items["B"], offset[tgt] + truth,
                                           n_negatives))
        ids = np.concatenate([[offset[tgt] + truth], neg])  # (1 + n,) in the joint id space
        items.append(np.where(ids >= n_items["A"], ids - n_items["A"], ids))
        in_b.append(ids >= n_items["A"])
        n_target.append(int((in_b[-1] == in_b[-1][0]).sum()) - 1)
    # one flat frame grouped back into lists: far faster than a dict per row
    flat = pl.DataFrame({"row": np.repeat(np.arange(len(items)), [len(i) for i in items]),
                         "cand_items": np.concatenate(items or [np.zeros(0)]).astype(np.int32),
                         "in_b": np.concatenate(in_b or [np.zeros(0, bool)])})
    flat = flat.with_columns(cand_domains=pl.when("in_b").then(pl.lit("B")).otherwise(pl.lit("A")))
    lists = flat.group_by("row", maintain_order=True).agg("cand_items", "cand_domains")
    table = rows.hstack(lists.drop("row")).with_columns(
        seed=pl.lit(seed), protocol=pl.lit(pool), n_target_negatives=pl.Series(n_target, dtype=pl.Int32))
    return table.select([pl.col(c).cast(t) for c, t in CANDIDATE_SCHEMA.items()])


def sample_all_seeds(held_out: pl.DataFrame, n_items: Mapping[str, int], n_negatives: int,
                     pools: str | Sequence[str], seeds: tuple[int, ...]) -> pl.DataFrame:
    """``sample_candidates`` for each seed and protocol, stacked (the ``eval_candidates`` table).

    ``pools``: one pool name or the protocols in order; rows follow that order within a
    seed, so the primary protocol is the first stored.
    """
    pools = (pools,) if isinstance(pools, str) else tuple(pools)
    frames = [sample_candidates(held_out, n_items, n_negatives, p, s) for s in seeds for p in pools]
    return pl.concat(frames) if frames else pl.DataFrame(schema=CANDIDATE_SCHEMA)

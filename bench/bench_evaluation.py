"""Evaluation at Food-Kitchen size: candidate sampling and batched ranking.

1. ``eval_rank_batched``: ``rank_users`` over 1,897 held-out users (960 valid + 937 test,
   the release's counts) with 1 + 999 candidates from both domains (8,661 + 27,637 items),
   scored by a d = 64 dot-product model, in batches of 256 users, against the same code
   with one user per batch (the per-user loop a naive evaluator runs).
2. ``eval_candidates_sampling``: sampling the candidate lists of those users for one seed,
   against drawing each user's negatives by rejection from Python's ``random`` module.

    .venv/bin/python -m bench.bench_evaluation [--users 1897]
"""

import argparse
import random

import numpy as np
import polars as pl
import torch

from bench.harness import report, timed
from models.evaluation.candidates import sample_candidates
from models.evaluation.ranking import eval_users, rank_users

N_ITEMS = {"A": 8661, "B": 27637}


def held_out(n: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    rows = []
    for u in range(n):
        tgt = "A" if u % 3 == 0 else "B"
        src = "B" if tgt == "A" else "A"
        hist = rng.integers(N_ITEMS[src], size=int(rng.integers(2, 10))).tolist()
        rows.append({"user": f"u{u:05d}", "split": "test" if u % 2 else "valid", "kind": "overlap",
                     "items": hist, "domains": [src] * len(hist), "source_domain": src,
                     "target_domain": tgt, "target_item": int(rng.integers(N_ITEMS[tgt]))})
    return pl.DataFrame(rows)


class DotProduct:
    """Mean of history item vectors dotted with target item vectors (d = 64)."""

    def __init__(self, d: int = 64):
        gen = torch.Generator().manual_seed(0)
        self.table = {k: torch.randn(n, d, generator=gen) for k, n in N_ITEMS.items()}

    def score(self, users, target_domain, candidates):
        h = torch.stack([self.table[u.source_domain][list(u.source_items())].mean(0)
                         for u in users])  # (B, d)
        table = self.table[target_domain]
        return h @ table.T if candidates is None else torch.einsum("bd,bcd->bc", h, table[candidates])


def naive_candidates(rows: pl.DataFrame, n_neg: int, seed: int) -> list[list[tuple[int, str]]]:
    rnd = random.Random(seed)
    universe = [(i, d) for d, n in N_ITEMS.items() for i in range(n)]
    out = []
    for r in rows.iter_rows(named=True):
        truth = (r["target_item"], r["target_domain"])
        chosen: set = set()
        while len(chosen) < n_neg:
            pick = rnd.choice(universe)
            if pick != truth:
                chosen.add(pick)
        out.append([truth, *sorted(chosen)])
    return out


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--users", type=int, default=1897)
    args = parser.parse_args()
    torch.set_num_threads(1)
    seqs = held_out(args.users)
    sampled_s, cands = timed(lambda: sample_candidates(seqs, N_ITEMS, 999, "all", 0))
    naive_s, _ = timed(lambda: naive_candidates(seqs, 999, 0))
    report("eval_candidates_sampling", sampled_s, naive_s, "s", users=args.users, negatives=999,
           baseline_desc="per-user rejection sampling with Python's random over both catalogs")
    users, scorer = eval_users(seqs), DotProduct()
    batched_s, batched = timed(lambda: rank_users(scorer, users, cands, 0, "dot", batch_size=256))
    loop_s, looped = timed(lambda: rank_users(scorer, users, cands, 0, "dot", batch_size=1))
    differing = int((batched["rank"] != looped["rank"]).sum())  # float summation order only
    report("eval_rank_batched", batched_s, loop_s, "s", users=args.users, ranks_differing=differing,
           mean_target_negatives=round(float(cands["n_target_negatives"].mean()), 1),
           baseline_desc="same rank_users code, one user per batch")


if __name__ == "__main__":
    main()

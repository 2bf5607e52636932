"""The planted problem of the baseline tests: A item k goes with B item k (co-purchase across domains)."""

import numpy as np
import polars as pl

from models.evaluation.ranking import rank_users
from models.metrics import ranking_metrics

N = 20
N_ITEMS = {"A": N, "B": N}


def planted(n_overlap: int = 200, n_eval: int = 40, seed: int = 0) -> pl.DataFrame:
    """Overlap users buy A item k then B item k; single users repeat one domain's item."""
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(n_overlap):
        k = int(rng.integers(N))
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        rows.append({"user": f"o{u:03d}", "split": "train", "kind": "overlap", "items": [k],
                     "domains": [src], "target_item": k, "target_domain": tgt,
                     "source_domain": src})
    for u in range(60):  # popularity: item 0 of each domain is the most bought
        dom = "A" if u % 2 else "B"
        rows.append({"user": f"s{u:03d}", "split": "train", "kind": "single", "items": [0, 0],
                     "domains": [dom, dom], "target_item": None, "target_domain": None,
                     "source_domain": dom})
    for u in range(n_eval):
        k = int(rng.integers(1, N))
        src, tgt = ("A", "B") if u % 2 else ("B", "A")
        rows.append({"user": f"e{u:03d}", "split": "test" if u % 4 < 2 else "valid",
                     "kind": "overlap", "items": [k], "domains": [src], "target_item": k,
                     "target_domain": tgt, "source_domain": src})
    return pl.DataFrame(rows, schema_overrides={"target_item": pl.Int32, "items": pl.List(pl.Int32)})


def hr10(scorer, users, cands) -> float:
    """HR@10 of ``scorer`` over the test users on seed 0's candidate lists."""
    ranks = rank_users(scorer, [u for u in users if u.split == "test"], cands, 0, "m")
    return ranking_metrics(ranks["rank"].to_numpy(), (10,))["hr@10"]

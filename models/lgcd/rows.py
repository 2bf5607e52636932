"""Training and validation rows of LGCD from the pipeline's sequence tables.

A row is one user in one direction (models/lgcd/data.py ``SequenceRow``): real
overlapping training users, pseudo-overlap users of the grounding stage (their
pseudo items cut to the model's nK), and the cold-start users of the valid split.
"""

from collections import Counter
from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch

from models.lgcd.data import SequenceRow, rows_from_records


def _keep_top_pseudo(rec: dict, n_k: int) -> dict:
    """Drop the pseudo items ranked below n_k (``pseudo_items`` is in retrieval order)."""
    budget = Counter(rec["pseudo_items"][:n_k])
    parts = []
    for i, d, p in zip(rec["items"], rec["domains"], rec["is_pseudo"], strict=True):
        if p and budget[i] <= 0:
            continue
        budget[i] -= p
        parts.append((i, d, p))
    return {**rec, "items": [i for i, _, _ in parts], "domains": [d for _, d, _ in parts],
            "is_pseudo": [p for _, _, p in parts]}


def training_rows(sequences: pl.DataFrame, pseudo: pl.DataFrame | None, n_k: int,
                  overlap_ratio: float = 1.0, seed: int = 0
                  ) -> tuple[list[SequenceRow], list[tuple[str, str]]]:
    """Real overlapping training users (a seeded ``overlap_ratio`` share) plus pseudo users.

    ``pseudo`` None (``pseudo_source: none``): real overlapping users only.

    Returns the rows and the (user, reason) of records that cannot train (e.g. no real
    source item); the caller reports them instead of failing on a handful of users.
    """
    overlap = sequences.filter((pl.col("split") == "train") & (pl.col("kind") == "overlap"))
    overlap = overlap.sort("user")
    if overlap_ratio < 1.0 and overlap.height:
        keep = max(1, round(overlap_ratio * overlap.height))
        picked = np.sort(np.random.default_rng([seed, 5]).permutation(overlap.height)[:keep])
        overlap = overlap[picked]
    skipped: list[tuple[str, str]] = []
    rows = rows_from_records(overlap.iter_rows(named=True), skipped)
    if pseudo is not None:
        pseudo_recs = (_keep_top_pseudo(r, n_k)
                       for r in pseudo.sort("user").iter_rows(named=True))
        rows += rows_from_records(pseudo_recs, skipped)
    return rows, skipped


def validation_rows(sequences: pl.DataFrame, max_users: int | None = None, seed: int = 0
                    ) -> tuple[list[SequenceRow], list[tuple[str, str]]]:
    """Rows of the valid split (cold-start users: source history, target item)."""
    valid = sequences.filter(pl.col("split") == "valid").sort("user")
    if max_users is not None and valid.height > max_users:
        picked = np.sort(np.random.default_rng([seed, 6]).permutation(valid.height)[:max_users])
        valid = valid[picked]
    skipped: list[tuple[str, str]] = []
    return rows_from_records(valid.iter_rows(named=True), skipped), skipped


def target_counts(rows: Sequence[SequenceRow], n_items: Mapping[str, int]
                  ) -> dict[str, torch.Tensor]:
    """Per direction, how often each target item is a real target-domain interaction (N_tgt,).

    Real overlap users' target histories and targets count; pseudo rows only where a
    direction has no real overlap user, since their items are LLM guesses.
    """
    out = {}
    for direction in {r.direction for r in rows}:
        tgt = direction[1]
        mine = [r for r in rows if r.direction == direction]
        real = [r for r in mine if r.kind == "overlap"] or mine
        counts = np.zeros(n_items[tgt], dtype=np.float64)
        for r in real:
            counts[r.target_item] += 1
            for i, d, p in zip(r.items, r.domains, r.is_pseudo, strict=True):
                if d == tgt and not p:
                    counts[i] += 1
        out[direction] = torch.from_numpy(counts).float()
    return out

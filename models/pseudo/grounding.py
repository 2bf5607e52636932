"""Grounding LLM guesses to real target items (paper equations 5 and 6).

``sequence`` mode follows the paper: the guessed titles of a user are embedded
with the same sentence embedder as the items, run as one sequence through the
*target* domain's pre-trained text encoder (eq. 5), and the nK items whose text
representation E_text is most cosine-similar are retrieved (eq. 6).
``per_title`` mode instead takes, round robin, the nearest items of each guessed
title by raw sentence-embedding cosine, which keeps each guess's identity.

A user whose answer held no usable title is grounded on their own source
titles instead (through the same target encoder) and flagged as a fallback.
``retrieval_requests`` builds that same query for users without any LLM answer:
the ``retrieval`` pseudo source, which measures what the LLM adds over the
user's own text, costs no generation and so can cover every single-domain user.
"""

from dataclasses import dataclass

import numpy as np
import polars as pl
import torch

from models.encoders.sequence import DomainEncoder
from models.pseudo.requests import GroundingConfig, insert_pseudo
from models.pseudo.retrieval import brute_force_topk, build_index, recall_at_k, search


@dataclass
class GroundingStats:
    users: int = 0
    fallback_users: int = 0
    mean_top1_cosine: float = 0.0
    index_recall_at_k: float | None = None  # approximate index vs exact, same queries


def _text_queries(encoder: DomainEncoder, per_user: list[np.ndarray], batch: int = 512) -> np.ndarray:
    """Eq. 5: the target text encoder over each user's sequence of title embeddings, (U, d)."""
    out = []
    max_len = encoder.cfg.max_len
    with torch.no_grad():
        for start in range(0, len(per_user), batch):
            group = [e[-max_len:] for e in per_user[start:start + batch]]
            width = max(len(e) for e in group)
            emb = torch.zeros(len(group), width, encoder.cfg.text_dim)  # (B, L, E), left padded
            mask = torch.zeros(len(group), width, dtype=torch.bool)  # (B, L)
            for i, e in enumerate(group):
                emb[i, width - len(e):] = torch.from_numpy(e)
                mask[i, width - len(e):] = True
            out.append(encoder.encode_text(emb, mask).numpy())  # (B, d)
    return np.concatenate(out) if out else np.zeros((0, encoder.cfg.d), dtype=np.float32)


def item_text_pool(encoder: DomainEncoder) -> np.ndarray:
    """E_text of eq. 6: every target item's text embedding in the encoder's d space, (N, d)."""
    with torch.no_grad():
        return encoder.text_proj(encoder.item_text).numpy()


def retrieve(queries: np.ndarray, pool: np.ndarray, cfg: GroundingConfig,
             n_k: int) -> tuple[np.ndarray, np.ndarray, float | None]:
    """Top-nK (scores, ids) per query with the configured FAISS index, plus recall vs exact."""
    index = build_index(pool, cfg.index)
    scores, ids = search(index, queries, n_k)
    recall = None
    if cfg.index.kind != "flat":
        recall = recall_at_k(ids, brute_force_topk(pool, queries, n_k)[1])
    return scores, ids, recall


def per_title_ids(title_emb: list[np.ndarray], item_emb: np.ndarray, cfg: GroundingConfig,
                  n_k: int) -> list[list[int]]:
    """Round robin over each title's nearest items until nK distinct items are chosen."""
    index = build_index(item_emb, cfg.index)
    chosen = []
    for emb in title_emb:
        _, ids = search(index, emb, n_k)  # (T, k)
        picked: list[int] = []
        for rank in range(ids.shape[1]):
            for t in range(ids.shape[0]):
                item = int(ids[t, rank])
                if item >= 0 and item not in picked and len(picked) < n_k:
                    picked.append(item)
        chosen.append(picked)
    return chosen


def retrieval_requests(sequences: pl.DataFrame, users: pl.DataFrame | None = None
                       ) -> pl.DataFrame:
    """Rows for ``ground`` without guesses, so each user is grounded on their own source text.

    ``users`` (user, source_domain, target_domain), e.g. the LLM sample's; by default every
    single-domain training user, towards the other domain.
    """
    if users is None:
        users = sequences.filter((pl.col("split") == "train") & (pl.col("kind") == "single"))
        users = users.select("user", "source_domain").with_columns(
            target_domain=pl.when(pl.col("source_domain") == "A").then(pl.lit("B"))
            .otherwise(pl.lit("A")))
    users = users.select("user", "source_domain", "target_domain").unique().sort("user")
    return users.with_columns(
        id=pl.format("{}>{}:{}", "source_domain", "target_domain", "user"),
        titles=pl.lit([], dtype=pl.List(pl.String)))


def ground(generations: pl.DataFrame, sequences: pl.DataFrame, title_vectors: dict[str, np.ndarray],
           source_item_emb: dict[str, np.ndarray], target_item_emb: dict[str, np.ndarray],
           encoders: dict[str, DomainEncoder], cfg: GroundingConfig,
           n_k: int) -> tuple[pl.DataFrame, GroundingStats]:
    """Pseudo-overlap sequences for every generation row, each with ``n_k`` pseudo items.

    ``title_vectors[id]`` holds the (T, E) embeddings of that row's guessed titles;
    ``source_item_emb[d]`` / ``target_item_emb[d]`` are domain d's (N, E) item
    sentence embeddings; ``encoders[d]`` is domain d's pre-trained encoder.
    """
    history = {r["user"]: r["items"] for r in sequences.filter(
        (pl.col("split") == "train") & (pl.col("kind") == "single")).iter_rows(named=True)}
    rng = np.random.default_rng(cfg.seed)
    stats = GroundingStats()
    rows = []
    recalls = []
    for target in ("A", "B"):
        part = generations.filter(pl.col("target_domain") == target).sort("user")
        if part.is_empty():
            continue
        source = part["source_domain"][0]
        per_user, fallback = [], []
        for rid, user in zip(part["id"], part["user"], strict=True):
            vecs = title_vectors.get(rid)
            if vecs is None or len(vecs) == 0:  # no usable guess: the user's own source text
                vecs = source_item_emb[source][history[user]]
                fallback.append(True)
            else:
                fallback.append(False)
            per_user.append(vecs.astype(np.float32))
        if cfg.mode == "sequence":
            queries = _text_queries(encoders[target], per_user)
            scores, ids, recall = retrieve(queries, item_text_pool(encoders[target]), cfg, n_k)
            picked = [[int(i) for i in row if i >= 0] for row in ids]
            top1 = scores[:, 0]
            if recall is not None:
                recalls.append(recall)
        else:
            picked = per_title_ids(per_user, target_item_emb[target], cfg, n_k)
            top1 = np.array([])  # per-title scores are not comparable to eq. 6 cosines
        for user, items, fb in zip(part["user"], picked, fallback, strict=True):
            src = history[user]
            merged, is_pseudo = insert_pseudo(src, items, rng)
            rows.append({"user": user, "source_domain": source, "target_domain": target,
                         "items": merged, "domains": [target if p else source for p in is_pseudo],
                         "is_pseudo": is_pseudo, "pseudo_items": items, "fallback": fb})
        stats.users += part.height
        stats.fallback_users += sum(fallback)
        stats.mean_top1_cosine += float(np.sum(top1))
    stats.mean_top1_cosine = stats.mean_top1_cosine / stats.users if stats.users else 0.0
    stats.index_recall_at_k = float(np.mean(recalls)) if recalls else None
    schema = {"user": pl.String, "source_domain": pl.String, "target_domain": pl.String,
              "items": pl.List(pl.Int32), "domains": pl.List(pl.String), "is_pseudo": pl.List(pl.Boolean),
              "pseudo_items": pl.List(pl.Int32), "fallback": pl.Boolean}
    return pl.DataFrame(rows, schema=schema), stats


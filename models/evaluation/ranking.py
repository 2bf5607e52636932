"""Ranking of held-out users on the stored candidate lists, for any model behind ``Scorer``.

One code path for every model and for both validation and test: a model only
has to score a batch of users against target-domain items; this module builds
the candidate tensors, masks other-domain negatives and padding (see
models/evaluation/candidates.py for why they score -inf), and turns scores into the 0-based
rank of the ground truth, under every stored candidate protocol from the same scores.
``metric_rows`` turns ranks into HR@k / NDCG@k per (model, seed, protocol, split,
target domain).
"""

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import polars as pl
import torch
from torch import Tensor

from models.data.schema import other
from models.evaluation.candidates import stored_protocols
from models.metrics import KS, candidate_ranks, ranking_metrics, target_ranks

RANK_SCHEMA = {"model": pl.String, "seed": pl.Int32, "protocol": pl.String, "split": pl.String,
               "user": pl.String, "target_domain": pl.String, "rank": pl.Int32,
               "n_candidates": pl.Int32}


@dataclass(frozen=True)
class EvalUser:
    """A held-out (valid/test) user: history, source and target domain, ground truth."""

    user: str
    split: str
    items: tuple[int, ...]  # history item indices, per domain (models/data/schema.py)
    domains: tuple[str, ...]
    source_domain: str
    target_domain: str
    target_item: int

    def source_items(self) -> list[int]:
        """History items of the source domain, in order (all of them under the strict policy)."""
        return [i for i, d in zip(self.items, self.domains, strict=True) if d == self.source_domain]

    def record(self) -> dict:
        """The ``sequences`` record of this user (for models that read rows, e.g. LGCD)."""
        return {"user": self.user, "split": self.split, "kind": "overlap", "items": list(self.items),
                "domains": list(self.domains), "source_domain": self.source_domain,
                "target_domain": self.target_domain, "target_item": self.target_item}


class Scorer(Protocol):
    """What evaluation needs from a model."""

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        """Scores of target-domain items: candidates (B, C) -> (B, C); None -> all items (B, N)."""
        ...


def eval_users(sequences: pl.DataFrame, splits: tuple[str, ...] = ("valid", "test")
               ) -> list[EvalUser]:
    """Held-out users of ``sequences`` in (split, user) order; the source is the other domain."""
    rows = sequences.filter(pl.col("split").is_in(list(splits))).sort("split", "user")
    out = []
    for r in rows.iter_rows(named=True):
        tgt = r["target_domain"]
        out.append(EvalUser(str(r["user"]), r["split"], tuple(int(i) for i in r["items"]),
                            tuple(r["domains"]), r["source_domain"] or other(tgt), tgt,
                            int(r["target_item"])))
    return out


def _target_candidates(candidates: pl.DataFrame, seed: int, protocol: str
                       ) -> dict[tuple[str, str], np.ndarray]:
    """(split, user) -> the target-domain candidates of one seed and protocol, truth first."""
    part = candidates.filter((pl.col("seed") == seed) & (pl.col("protocol") == protocol)).select(
        "split", "user", "target_domain", "cand_items", "cand_domains")
    if part.is_empty():
        return {}
    kept = (part.explode("cand_items", "cand_domains")
            .filter(pl.col("cand_domains") == pl.col("target_domain")))
    counts = kept.group_by("split", "user", maintain_order=True).len()
    arrays = np.split(kept["cand_items"].to_numpy().astype(np.int64),
                      np.cumsum(counts["len"].to_numpy())[:-1])
    return dict(zip(zip(counts["split"], counts["user"], strict=True), arrays, strict=True))


def _union(lists: Sequence[np.ndarray]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One user's lists of several protocols as one list to score, and each list's positions in it.

    The union keeps first-appearance order (the ground truth, first in every list, stays
    first); a single list is its own union, so one protocol scores exactly as before.
    """
    joined = np.concatenate(lists)
    unique, first, inverse = np.unique(joined, return_index=True, return_inverse=True)
    order = np.argsort(first, kind="stable")
    position = np.empty_like(order)
    position[order] = np.arange(order.size)
    where = position[inverse.reshape(-1)]  # position in the union of every joined entry
    return unique[order], np.split(where, np.cumsum([len(k) for k in lists])[:-1])


def _batches(users: Sequence[EvalUser], batch_size: int
             ) -> Iterator[tuple[str, list[EvalUser]]]:
    """(target domain, users) in batches of one target domain each."""
    for tgt in ("A", "B"):
        group = [u for u in users if u.target_domain == tgt]
        for start in range(0, len(group), batch_size):
            yield tgt, group[start:start + batch_size]


def _candidate_tensor(lists: list[np.ndarray]) -> tuple[Tensor, Tensor]:
    """Candidates right-padded with the ground truth, and the real-entry mask: (B, C) x2."""
    width = max(len(k) for k in lists)
    items = np.repeat(np.array([k[0] for k in lists], dtype=np.int64)[:, None], width, axis=1)
    valid = np.zeros((len(lists), width), dtype=bool)
    for row, k in enumerate(lists):
        items[row, :len(k)] = k
        valid[row, :len(k)] = True
    return torch.from_numpy(items), torch.from_numpy(valid)


@torch.no_grad()
def rank_users(scorer: Scorer, users: Sequence[EvalUser], candidates: pl.DataFrame, seed: int,
               model: str, batch_size: int = 256, protocols: Sequence[str] | None = None
               ) -> pl.DataFrame:
    """Rank of the ground truth for each user and protocol on the seed's stored lists (``RANK_SCHEMA``).

    ``protocols``: which stored protocols to rank under, in order; None ranks under all of
    them (the primary one first). Each batch is scored once, on the union of its users'
    lists (or on the whole catalog when "full" is among them), and every protocol's rank is
    read from those same scores: the protocols differ only in the lists. Under "full" the
    rank is taken among every target-domain item. Users without a candidate row are an
    error: the lists must cover the split.
    """
    chosen = stored_protocols(candidates) if protocols is None else list(protocols)
    cand = {p: _target_candidates(candidates, seed, p) for p in chosen}
    for protocol, lists in cand.items():
        missing = [u.user for u in users if (u.split, u.user) not in lists]
        if missing:
            raise ValueError(f"no stored {protocol!r} candidates for seed {seed} and users "
                             f"{missing[:5]} ({len(missing)} in all); re-materialize eval_candidates")
    rows = []
    for tgt, chunk in _batches(users, batch_size):
        per_user = [[cand[p][(u.split, u.user)] for p in chosen] for u in chunk]
        if any(int(k[0]) != u.target_item for lists, u in zip(per_user, chunk, strict=True)
               for k in lists):
            raise ValueError("stored candidates do not match the users' ground truth; "
                             "re-materialize eval_candidates")
        truth = torch.tensor([u.target_item for u in chunk], dtype=torch.long)  # (B,)
        if "full" in chosen:
            table = scorer.score(chunk, tgt, None).float()  # (B, N)
            unions = [np.arange(table.shape[1]) for _ in chunk]
            where = [list(lists) for lists in per_user]  # item ids are the table's columns
        else:
            unions, where = zip(*(_union(lists) for lists in per_user), strict=True)
            items, _ = _candidate_tensor(list(unions))  # (B, W)
            table = scorer.score(chunk, tgt, items).float()  # (B, W)
            if table.shape != items.shape:
                raise ValueError(f"{model}: scores of shape {tuple(table.shape)} for candidates "
                                 f"{tuple(items.shape)}")
        for j, protocol in enumerate(chosen):
            if protocol == "full":
                ranks = target_ranks(table, truth)
                sizes = [table.shape[1]] * len(chunk)
            else:
                positions, valid = _candidate_tensor([w[j] for w in where])  # (B, C), (B, C)
                scores = table.gather(1, positions)  # (B, C)
                ranks = candidate_ranks(scores.masked_fill(~valid, float("-inf")), valid)
                sizes = valid.sum(1).tolist()
            for u, rank, size in zip(chunk, ranks.tolist(), sizes, strict=True):
                rows.append({"model": model, "seed": seed, "protocol": protocol, "split": u.split,
                             "user": u.user, "target_domain": tgt, "rank": rank,
                             "n_candidates": size})
    return pl.DataFrame(rows, schema=RANK_SCHEMA)


def metric_rows(ranks: pl.DataFrame, ks: tuple[int, ...] = KS) -> pl.DataFrame:
    """HR@k and NDCG@k per (model, seed, protocol, split, target_domain), plus domains pooled.

    ``candidates``: the mean list size the ranks were taken in (under "all" the
    target-domain part, the effective list).
    """
    keys = ["model", "seed", "protocol", "split"]
    out = []
    for (model, seed, protocol, split), part in ranks.group_by(keys, maintain_order=True):
        groups = [(d, part.filter(pl.col("target_domain") == d)) for d in ("A", "B")]
        for domain, sub in [*groups, ("all", part)]:
            if sub.is_empty():
                continue
            values = ranking_metrics(sub["rank"].to_numpy(), ks)
            out.append({"model": model, "seed": seed, "protocol": protocol, "split": split,
                        "target_domain": domain, "users": sub.height,
                        "candidates": float(sub["n_candidates"].mean()), **values})
    schema = {"model": pl.String, "seed": pl.Int32, "protocol": pl.String, "split": pl.String,
              "target_domain": pl.String, "users": pl.Int64, "candidates": pl.Float64,
              **{f"{m}@{k}": pl.Float64 for k in ks for m in ("hr", "ndcg")}}
    return pl.DataFrame(out, schema=schema)


def validation_ndcg(scorer: Scorer, users: Sequence[EvalUser], candidates: pl.DataFrame,
                    seed: int, k: int = 10, batch_size: int = 256,
                    protocol: str | None = None) -> float:
    """NDCG@k on validation users with the stored candidates (early stopping of baselines).

    One protocol only, so a model is selected on one number: ``protocol``, or None for the
    primary one (the first stored in ``candidates``).
    """
    valid = [u for u in users if u.split == "valid"]
    if not valid:
        return 0.0
    chosen = stored_protocols(candidates)[:1] if protocol is None else [protocol]
    ranks = rank_users(scorer, valid, candidates, seed, "valid", batch_size, chosen)
    return ranking_metrics(ranks["rank"].to_numpy(), (k,))[f"ndcg@{k}"]


def target_popularity(sequences: pl.DataFrame) -> pl.DataFrame:
    """Training interactions of every item: (domain, item, count), all training users."""
    train = sequences.filter(pl.col("split") == "train").select("items", "domains")
    return (train.explode("items", "domains")
            .group_by(pl.col("domains").alias("domain"), pl.col("items").alias("item"))
            .agg(pl.len().alias("count")))


def metrics_by_target_popularity(ranks: pl.DataFrame, sequences: pl.DataFrame,
                                 edges: tuple[int, ...] = (10, 50), k: int = 10
                                 ) -> pl.DataFrame:
    """HR@k / NDCG@k per (model, protocol, split, target domain, target-popularity bucket).

    Why: a split whose valid and test targets differ in popularity can rank models
    differently on the two, and a model that early-stops on valid is then tuned for
    the other mix. A bucket holds the held-out users whose ground-truth item has
    between two ``edges`` training interactions (``<10``, ``10-49``, ``>=50`` for the
    default); seeds are pooled, so ``rows`` is users times seeds.
    """
    if list(edges) != sorted(set(edges)) or not edges or edges[0] < 1:
        raise ValueError(f"edges={edges}; need increasing positive counts")
    inner = [f"{lo}-{hi - 1}" for lo, hi in zip(edges[:-1], edges[1:], strict=True)]
    labels = [f"<{edges[0]}", *inner, f">={edges[-1]}"]
    held = sequences.filter(pl.col("split").is_in(["valid", "test"])).select(
        "split", "user", pl.col("target_domain").alias("domain"),
        pl.col("target_item").alias("item"))
    counts = held.join(target_popularity(sequences), on=["domain", "item"], how="left")
    counts = counts.with_columns(pl.col("count").fill_null(0).alias("target_count"))
    bucket = pl.col("target_count").cut(list(edges), labels=labels, left_closed=True)
    joined = ranks.join(counts.select("split", "user", "target_count"), on=["split", "user"],
                        how="left")
    missing = joined.filter(pl.col("target_count").is_null()).height
    if missing:
        raise ValueError(f"{missing} ranked users are not held-out users of these sequences")
    rank = pl.col("rank")
    return (joined.with_columns(bucket.cast(pl.String).alias("bucket"))
            .group_by("model", "protocol", "split", "target_domain", "bucket")
            .agg(pl.len().alias("rows"), pl.col("target_count").median().alias("median_count"),
                 (rank < k).mean().alias(f"hr@{k}"),
                 pl.when(rank < k).then(1.0 / (rank.cast(pl.Float64) + 2.0).log(2))
                 .otherwise(0.0).mean().alias(f"ndcg@{k}"))
            .with_columns(pl.col("bucket").cast(pl.Enum(labels)))
            .sort("protocol", "split", "target_domain", "bucket", "model"))

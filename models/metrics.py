"""Top-k ranking metrics from the 0-based rank of one ground-truth item per user (HR@k, NDCG@k).

The rank is the number of competing items that score at least as high as the
ground truth. It comes either from a full ranking (``target_ranks``) or from a
candidate list with the ground truth in column 0 (``candidate_ranks``, the
paper's 1 + 999 protocol). Ties count against the ground truth, so a model that
scores everything equally ranks it last, never first; a NaN score of the ground
truth also ranks last.

With one relevant item, HR@k = 1[rank < k] and NDCG@k = 1[rank < k] / log2(rank + 2)
(the ideal DCG is 1), averaged over users.
"""

import numpy as np
import torch

KS = (1, 5, 10, 20)  # cut-offs reported everywhere (the paper shows 5 and 10)


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: (B, N), (B,) -> (B,).

    Ties count against the target (rank = items scoring at least as high, minus
    itself), so a degenerate model that scores everything equally ranks last,
    never first.
    """
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    worse = torch.isnan(target_scores).expand_as(scores)  # a NaN target loses to every item
    return ((scores >= target_scores) | worse).sum(dim=1) - 1


def candidate_ranks(scores: torch.Tensor, valid: torch.Tensor | None = None) -> torch.Tensor:
    """0-based rank of column 0 (the ground truth) among the valid other columns: (B, C) -> (B,).

    ``valid`` (B, C) bool marks real candidates; padding columns never count.
    """
    if valid is None:
        valid = torch.ones_like(scores, dtype=torch.bool)
    truth = scores[:, :1]  # (B, 1)
    beats = (scores[:, 1:] >= truth) | torch.isnan(truth)  # (B, C-1)
    return (beats & valid[:, 1:]).sum(dim=1)


def hit_rate(ranks: torch.Tensor, k: int) -> float:
    """Share of targets ranked in the top k."""
    return float((ranks < k).float().mean()) if ranks.numel() else 0.0


def ndcg(ranks: torch.Tensor, k: int) -> float:
    """NDCG@k with one relevant item per row: 1 / log2(rank + 2) inside the top k, else 0."""
    if not ranks.numel():
        return 0.0
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return float(torch.where(ranks < k, gains, torch.zeros_like(gains)).mean())


def ndcg_per_user(ranks: np.ndarray, k: int) -> np.ndarray:
    """Per-user NDCG@k (for paired tests): (U,) ranks -> (U,) gains."""
    ranks = np.asarray(ranks, dtype=np.float64)
    return np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)


def ranking_metrics(ranks: np.ndarray, ks: tuple[int, ...] = KS) -> dict[str, float]:
    """{"hr@k": ..., "ndcg@k": ...} for every k, from an array of 0-based ranks (0.0 if empty)."""
    ranks = np.asarray(ranks, dtype=np.float64)
    out: dict[str, float] = {}
    for k in ks:
        out[f"hr@{k}"] = float((ranks < k).mean()) if ranks.size else 0.0
        out[f"ndcg@{k}"] = float(ndcg_per_user(ranks, k).mean()) if ranks.size else 0.0
    return out

"""Top-k ranking metrics over a full item ranking (HR@k, NDCG@k)."""

import torch


def target_ranks(scores: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """0-based rank of each target among all items: (B, N), (B,) -> (B,).

    Ties count against the target (rank = items scoring at least as high, minus
    itself), so a degenerate model that scores everything equally ranks last,
    never first.
    """
    target_scores = scores.gather(1, targets[:, None])  # (B, 1)
    return (scores >= target_scores).sum(dim=1) - 1


def hit_rate(ranks: torch.Tensor, k: int) -> float:
    """Share of targets ranked in the top k."""
    return float((ranks < k).float().mean()) if ranks.numel() else 0.0


def ndcg(ranks: torch.Tensor, k: int) -> float:
    """NDCG@k with one relevant item per row: 1 / log2(rank + 2) inside the top k, else 0."""
    if not ranks.numel():
        return 0.0
    gains = 1.0 / torch.log2(ranks.double() + 2.0)
    return float(torch.where(ranks < k, gains, torch.zeros_like(gains)).mean())

"""Next-item losses shared by the encoders, SASRec, GRU4Rec and the bag floor.

Why sampled softmax. A full softmax over Kitchen's 27,637 items costs 0.5 s a step
on two cores (the (P, N) logits and the N-row item table dominate); a unique
candidate set of the batch's positives plus K shared uniform negatives costs a
fraction of that. Candidates are drawn with unequal probabilities (positives by
training frequency, negatives uniformly), so every candidate's logit is
corrected by the log of its inclusion probability (logQ correction, Yi et al.,
RecSys 2019): without it popular items are over-penalised as negatives. When
the candidates cover the catalog every inclusion probability is 1, the
correction vanishes and the loss equals the full softmax exactly (tested).
"""

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor


def check_negatives(n_negatives: int, n_items: int, field: str) -> None:
    """Sampled softmax needs fewer negatives than items; the message names the config field."""
    if n_negatives >= n_items:
        raise ValueError(f"{field}={n_negatives} asks for at least as many sampled negatives as "
                         f"the {n_items} items; lower it or raise the full-softmax threshold so "
                         "this catalog uses the full softmax")


def candidate_set(positives: Tensor, n_items: int, n_negatives: int,
                  generator: torch.Generator) -> Tensor:
    """Sorted unique ids of the batch's positives plus ``n_negatives`` uniform draws: (C,).

    With at least as many negatives as items the set is the whole catalog, drawn or not.
    """
    if n_negatives >= n_items:
        return torch.arange(n_items, device=positives.device)
    negatives = torch.randint(n_items, (n_negatives,), generator=generator)
    return torch.unique(torch.cat([positives.cpu(), negatives])).to(positives.device)


def inclusion_log_prob(candidates: Tensor, target_freq: Tensor, n_positive_draws: int,
                       n_negatives: int) -> Tensor:
    """Log-probability that each candidate is in the set, log P(item in C) for each candidate: (C,).

    ``target_freq`` (N,) is each item's share of training targets, the proposal of the
    positives; the negatives are uniform over the N items.
    """
    n_items = target_freq.shape[0]
    if n_negatives >= n_items:  # the whole catalog: every item is in the set for sure
        return torch.zeros(len(candidates))
    p = target_freq[candidates].double()  # (C,)
    miss = (1.0 - p).pow(n_positive_draws) * (1.0 - 1.0 / n_items) ** n_negatives
    return torch.log((1.0 - miss).clamp_min(1e-12)).to(torch.float32)


def sampled_softmax_loss(h: Tensor, targets: Tensor, candidates: Tensor, cand_table: Tensor,
                         log_q: Tensor | None = None, bias: Tensor | None = None) -> Tensor:
    """Mean cross-entropy of states h (P, d) over the candidate rows (C, d), logQ-corrected.

    ``candidates`` (C,) are sorted unique item ids containing every target; ``bias`` (C,)
    is an optional per-item score bias.
    """
    logits = h @ cand_table.T  # (P, C)
    if bias is not None:
        logits = logits + bias[None, :]
    if log_q is not None:
        logits = logits - log_q[None, :].to(logits.dtype)
    labels = torch.searchsorted(candidates, targets)  # (P,)
    return F.cross_entropy(logits.float(), labels)


def target_frequencies(targets: list[int], n_items: int) -> Tensor:
    """Each item's share of the training targets (the positives' proposal): (N,)."""
    counts = torch.bincount(torch.tensor(targets, dtype=torch.long), minlength=n_items).double()
    return counts / counts.sum().clamp_min(1.0)


def sampled_next_item_loss(h: Tensor, targets: Tensor, rows: Callable[[Tensor], Tensor],
                           target_freq: Tensor, n_negatives: int, generator: torch.Generator,
                           bias: Tensor | None = None) -> Tensor:
    """The whole sampled softmax of one batch: candidates, their logQ, the loss.

    h (P, d) states, targets (P,) item ids, ``rows(candidates)`` the (C, d) item rows to
    score (only the candidates' rows are ever computed), ``bias`` (N,) an optional item bias.
    """
    cands = candidate_set(targets, target_freq.shape[0], n_negatives, generator)  # (C,)
    log_q = inclusion_log_prob(cands.cpu(), target_freq, len(targets), n_negatives)
    return sampled_softmax_loss(h, targets, cands, rows(cands), log_q.to(h.device),
                                None if bias is None else bias[cands])

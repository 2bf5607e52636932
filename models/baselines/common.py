"""Shared pieces of the baselines: training interactions, the joint vocabulary, early stopping."""

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import polars as pl
import torch
from torch import nn


@dataclass(frozen=True)
class Interactions:
    """Chronological training sequences of every training user, overlap targets appended."""

    items: list[list[int]]  # per-domain item indices
    domains: list[list[str]]
    overlap: list[bool]  # the user is a real overlapping (cross-domain) training user

    @classmethod
    def from_sequences(cls, sequences: pl.DataFrame) -> "Interactions":
        """Training rows of ``sequences``; an overlap row's held-out last item is put back."""
        items, domains, overlap = [], [], []
        for r in sequences.filter(pl.col("split") == "train").sort("user").iter_rows(named=True):
            its, doms = [int(i) for i in r["items"]], list(r["domains"])
            if r["target_item"] is not None:
                its.append(int(r["target_item"]))
                doms.append(r["target_domain"])
            items.append(its)
            domains.append(doms)
            overlap.append(r["kind"] == "overlap")
        return cls(items, domains, overlap)


class JointVocab:
    """One id space over both domains: A items keep their index, B items follow them."""

    def __init__(self, n_items: dict[str, int]):
        self.n_items = dict(n_items)
        self.offset = {"A": 0, "B": n_items["A"]}
        self.size = n_items["A"] + n_items["B"]

    def ids(self, items: list[int], domains: list[str]) -> list[int]:
        return [self.offset[d] + i for i, d in zip(items, domains, strict=True)]

    def domain_slice(self, domain: str) -> slice:
        return slice(self.offset[domain], self.offset[domain] + self.n_items[domain])


@dataclass
class FitResult:
    history: list[dict[str, float]] = field(default_factory=list)  # epoch, loss, val_ndcg@10, s
    best_epoch: int = 0
    best_metric: float = -1.0


def fit_early_stopping(model: nn.Module, run_epoch: Callable[[int], float],
                       validate: Callable[[], float], epochs: int, patience: int,
                       on_epoch: Callable[[dict[str, float]], None] | None = None) -> FitResult:
    """Train epoch by epoch, keeping the weights of the best validation NDCG@10.

    Stops after ``patience`` epochs without improvement; the model ends holding the best weights.
    ``on_epoch`` receives each epoch's history row as it finishes (progress in the Dagster log:
    a baseline epoch on a real catalog takes minutes on a CPU).
    """
    result = FitResult()
    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
    stale = 0
    for epoch in range(1, epochs + 1):
        began = time.perf_counter()
        model.train()
        loss = run_epoch(epoch)
        model.eval()
        metric = validate()
        result.history.append({"epoch": epoch, "loss": loss, "val_ndcg@10": metric,
                               "seconds": time.perf_counter() - began})
        if on_epoch is not None:
            on_epoch(result.history[-1])
        if metric > result.best_metric:
            result.best_metric, result.best_epoch, stale = metric, epoch, 0
            best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        else:
            stale += 1
            if stale >= patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    return result


def scores_for(table: torch.Tensor, h: torch.Tensor, candidates: torch.Tensor | None
               ) -> torch.Tensor:
    """Dot-product scores of user vectors h (B, d) against item rows: (B, C) or (B, N)."""
    if candidates is None:
        return h @ table.T
    return torch.einsum("bd,bcd->bc", h, table[candidates])

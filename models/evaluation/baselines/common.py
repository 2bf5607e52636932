"""Shared pieces of the baselines: training interactions, the joint vocabulary, the fit loop."""

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import polars as pl
import torch
from torch import Tensor, nn

from models.train import LoopConfig, train_loop


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
class BaselineFit:
    """What the shared loop reports of a trained baseline (LGCD's counterpart: ``LGCDFit``)."""

    history: list[dict[str, float]] = field(default_factory=list)  # epoch, loss, val_ndcg@10, s
    best_epoch: float = 0
    best_metric: float = -1.0
    steps: int = 0
    precision: str = "fp32"


def fit_with_loop(model: nn.Module, optimizer: torch.optim.Optimizer,
                  batches: Callable[[int], Iterable[Any]], loss_fn: Callable[[Any], Tensor],
                  validate: Callable[[], float], cfg: LoopConfig, *, seed: int,
                  steps_per_epoch: int, name: str,
                  on_epoch: Callable[[dict[str, float]], None] | None = None,
                  on_progress: Callable[[str], None] | None = None) -> BaselineFit:
    """A baseline through the shared loop (models/train.py), early-stopped on NDCG@10.

    ``validate`` is the baseline's NDCG@10 on the stored validation lists; ``on_epoch`` gets
    each validation's row (epoch, loss, val_ndcg@10, seconds) as it finishes.
    """
    def report(row: dict[str, float]) -> None:
        out = {"epoch": row["epoch"], "loss": row.get("loss", float("nan")),
               "val_ndcg@10": row["ndcg@10"], "seconds": row["seconds"]}
        result.history.append(out)
        if on_epoch is not None:
            on_epoch(out)

    result = BaselineFit()
    loop = train_loop(model, optimizer, batches, loss_fn, lambda: {"ndcg@10": validate()}, cfg,
                      seed=seed, steps_per_epoch=steps_per_epoch, name=name, on_eval=report,
                      on_progress=on_progress)
    result.best_epoch, result.best_metric = loop.best_epoch, loop.best_metric
    result.steps, result.precision = loop.steps, loop.precision
    return result


def scores_for(table: torch.Tensor, h: torch.Tensor, candidates: torch.Tensor | None
               ) -> torch.Tensor:
    """Dot-product scores of user vectors h (B, d) against item rows: (B, C) or (B, N)."""
    if candidates is None:
        return h @ table.T
    return torch.einsum("bd,bcd->bc", h, table[candidates])

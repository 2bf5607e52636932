"""Most-popular baseline: an item's score is its number of training interactions.

Counts come from every training user (single-domain and overlapping, overlap
targets included); cold-start users all receive the same target-domain ranking.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from models.baselines.common import Interactions, scores_for
from models.evaluation import EvalUser


class Popularity:
    def __init__(self, counts: dict[str, Tensor]):
        self.counts = counts  # domain -> (N,) float64 interaction counts

    @classmethod
    def fit(cls, train: Interactions, n_items: dict[str, int]) -> "Popularity":
        counts = {d: np.zeros(n, dtype=np.float64) for d, n in n_items.items()}
        for items, domains in zip(train.items, train.domains, strict=True):
            for item, dom in zip(items, domains, strict=True):
                counts[dom][item] += 1.0
        return cls({d: torch.from_numpy(c) for d, c in counts.items()})

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        table = self.counts[target_domain][:, None]  # (N, 1): a constant "user vector" of 1
        h = torch.ones(len(users), 1, dtype=table.dtype)
        return scores_for(table, h, candidates)

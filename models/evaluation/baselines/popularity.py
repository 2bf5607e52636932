"""Most-popular baselines: an item's score is its number of training interactions.

``popularity`` counts every training user (single-domain and overlapping, overlap
targets included). ``target_popularity`` (``overlap_only``) counts only overlapping
training users: their target-domain items are what a cold-start user buys after
coming from the other domain, which single-domain users' tastes do not show (on
Food-Kitchen it scores about twice ``popularity``). It is a floor of the report:
a learned model below it has not learned the cross-domain task. Cold-start users
all receive the same target-domain ranking.
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from models.evaluation.baselines.common import Interactions, scores_for
from models.evaluation.ranking import EvalUser


class Popularity:
    def __init__(self, counts: dict[str, Tensor]):
        self.counts = counts  # domain -> (N,) float64 interaction counts

    @classmethod
    def fit(cls, train: Interactions, n_items: dict[str, int],
            overlap_only: bool = False) -> "Popularity":
        counts = {d: np.zeros(n, dtype=np.float64) for d, n in n_items.items()}
        for items, domains, overlap in zip(train.items, train.domains, train.overlap, strict=True):
            if overlap_only and not overlap:
                continue
            for item, dom in zip(items, domains, strict=True):
                counts[dom][item] += 1.0
        return cls({d: torch.from_numpy(c) for d, c in counts.items()})

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        table = self.counts[target_domain][:, None]  # (N, 1): a constant "user vector" of 1
        h = torch.ones(len(users), 1, dtype=table.dtype)
        return scores_for(table, h, candidates)

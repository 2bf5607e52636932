"""Cross-domain item-KNN on co-occurrence among overlapping training users.

sim(i, j) = c(i, j) / sqrt(n_i n_j) for a source item i and a target item j,
where c counts overlapping training users who interacted with both and n counts
the overlapping users of each item (cosine of binary user vectors). A user's score
for j is the sum of sim(i, j) over the source items of the history. Users whose
items never co-occur with a target item would tie on every candidate, so scores
carry a popularity term a billion times smaller than any co-occurrence: it only
breaks ties (such users get the popularity ranking).
"""

from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.ranking import EvalUser

TIE_BREAK = 1e-9


class CrossDomainItemKNN:
    def __init__(self, sim: dict[str, Tensor], popularity: Popularity, n_items: dict[str, int]):
        self.sim = sim  # "AB" / "BA" -> sparse (N_tgt, N_src) float64
        self.popularity = popularity
        self.n_items = n_items

    @classmethod
    def fit(cls, train: Interactions, n_items: dict[str, int]) -> "CrossDomainItemKNN":
        sim = {}
        users = [(set(zip(i, d, strict=True))) for i, d, o in
                 zip(train.items, train.domains, train.overlap, strict=True) if o]
        for src, tgt in (("A", "B"), ("B", "A")):
            pairs: dict[tuple[int, int], float] = {}
            n_src = np.zeros(n_items[src])
            n_tgt = np.zeros(n_items[tgt])
            for seen in users:
                s_items = sorted(i for i, d in seen if d == src)
                t_items = sorted(i for i, d in seen if d == tgt)
                n_src[s_items] += 1
                n_tgt[t_items] += 1
                for j in t_items:
                    for i in s_items:
                        pairs[(j, i)] = pairs.get((j, i), 0.0) + 1.0
            if pairs:
                idx = np.array(list(pairs), dtype=np.int64).T  # (2, nnz) rows j, cols i
                vals = np.array(list(pairs.values())) / np.sqrt(n_tgt[idx[0]] * n_src[idx[1]])
            else:
                idx, vals = np.zeros((2, 0), dtype=np.int64), np.zeros(0)
            sim[src + tgt] = torch.sparse_coo_tensor(
                torch.from_numpy(idx), torch.from_numpy(vals),
                (n_items[tgt], n_items[src]), check_invariants=True).coalesce()
        return cls(sim, Popularity.fit(train, n_items), n_items)

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        src = "B" if target_domain == "A" else "A"
        x = torch.zeros(self.n_items[src], len(users), dtype=torch.float64)  # (N_src, B)
        for col, u in enumerate(users):
            for item in set(u.source_items()):
                x[item, col] = 1.0
        knn = torch.sparse.mm(self.sim[src + target_domain], x).T  # (B, N_tgt)
        pop = self.popularity.counts[target_domain]
        full = knn + TIE_BREAK * pop / max(float(pop.max()), 1.0)  # (B, N_tgt)
        return full if candidates is None else full.gather(1, candidates)

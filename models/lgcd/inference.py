"""A trained LGCD behind the evaluation's ``Scorer`` protocol (models/evaluation/ranking.py).

Held-out users become LGCD rows exactly as in validation (kind "eval": the source
history conditions, no target history), and the reverse process draws its noise
from a generator seeded with the evaluation seed, so a re-run gives the same ranks.
"""

from collections.abc import Sequence

import torch
from torch import Tensor

from models.evaluation.ranking import EvalUser
from models.lgcd.data import rows_from_records
from models.lgcd.model import LGCD
from models.lgcd.stage import score_rows


class LGCDScorer:
    def __init__(self, model: LGCD, seed: int):
        self.model, self.seed = model.eval(), seed

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        rows = rows_from_records(u.record() for u in users)
        cand = None if candidates is None else candidates.numpy()
        scores = score_rows(self.model, rows, cand, seed=self.seed, batch_size=max(1, len(rows)))
        return torch.from_numpy(scores)

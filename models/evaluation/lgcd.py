"""A trained LGCD behind the evaluation's ``Scorer`` protocol (models/evaluation/ranking.py).

Held-out users become LGCD rows exactly as in validation (kind "eval": the source
history conditions, no target history), and the reverse process draws its noise
from a generator seeded with the evaluation seed, so a re-run gives the same ranks.
"""

from collections.abc import Mapping, Sequence

import polars as pl
import torch
from torch import Tensor

from models.encoders.sequence import CheckpointParts, encoders_from_checkpoints
from models.evaluation.ranking import EvalUser, rank_users
from models.lgcd.checkpoint import lgcd_from_checkpoint
from models.lgcd.data import rows_from_records
from models.lgcd.inference import score_rows
from models.lgcd.model import LGCD


class LGCDScorer:
    def __init__(self, model: LGCD, seed: int):
        self.model, self.seed = model.eval(), seed

    def score(self, users: Sequence[EvalUser], target_domain: str,
              candidates: Tensor | None) -> Tensor:
        rows = rows_from_records(u.record() for u in users)
        cand = None if candidates is None else candidates.numpy()
        scores = score_rows(self.model, rows, cand, seed=self.seed, batch_size=max(1, len(rows)))
        return torch.from_numpy(scores)


def rank_lgcd(checkpoint: CheckpointParts, encoders: Mapping[str, CheckpointParts],
              users: Sequence[EvalUser], candidates: pl.DataFrame, seed: int, model: str,
              batch_size: int, protocols: Sequence[str]) -> pl.DataFrame:
    """Ranks (``RANK_SCHEMA``) of a trained LGCD rebuilt from its checkpoint over its encoders'.

    The encoders are rebuilt from their checkpoints on every call: a model that fine-tuned
    them loads its own weights into them. The reverse process draws its noise from ``seed``.
    """
    net = lgcd_from_checkpoint(checkpoint.state_dict, checkpoint.config,
                               encoders_from_checkpoints(encoders))
    return rank_users(LGCDScorer(net, seed), users, candidates, seed, model, batch_size, protocols)

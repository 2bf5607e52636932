"""A trained LGCD behind the evaluation's ``Scorer`` protocol (models/evaluation/ranking.py).

Held-out users become LGCD rows exactly as in validation (kind "eval": the source
history conditions, no target history), and the reverse process draws its noise
from a generator seeded with the evaluation seed, so a re-run gives the same ranks.
"""

from collections.abc import Mapping, Sequence

import numpy as np
import polars as pl
import torch
from torch import Tensor

from models.encoders.sequence import CheckpointParts, encoders_from_checkpoints
from models.evaluation.ranking import EvalUser, rank_users
from models.lgcd.checkpoint import lgcd_from_checkpoint
from models.lgcd.data import SequenceRow, collate, rows_from_records
from models.lgcd.model import LGCD


@torch.no_grad()
def score_rows(model: LGCD, rows: Sequence[SequenceRow], candidates: np.ndarray | None = None,
               seed: int = 0, batch_size: int = 256) -> np.ndarray:
    """Scores of each row's candidates (R, C), or of the whole target catalog when None.

    Rows may mix directions; the reverse process draws its noise from one generator seeded
    with ``seed``, so a call is reproducible. Full-catalog scores need one target domain.
    """
    if candidates is None and len({r.target_domain for r in rows}) > 1:
        raise ValueError("full-catalog scores of rows with different target domains differ in "
                         "width; score each target domain separately")
    device = next(model.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    out: list[np.ndarray | None] = [None] * len(rows)
    for start in range(0, len(rows), batch_size):
        chunk = rows[start:start + batch_size]
        for direction, b in collate(chunk, max_len=model.cfg.max_len).to(device).paths.items():
            pos = [start + int(i) for i in b.row.cpu()]
            cand = None if candidates is None else torch.from_numpy(
                np.asarray(candidates)[pos]).long().to(device)  # (B, C)
            scores = model.score(direction, b, cand, generator=gen).cpu().numpy()
            for p, s in zip(pos, scores, strict=True):
                out[p] = s
    return np.stack(out) if rows else np.zeros((0, 0), dtype=np.float32)


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

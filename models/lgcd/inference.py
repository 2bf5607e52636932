"""Scoring with a trained LGCD: candidates or the whole target catalog, reproducibly.

The reverse process draws its noise from a generator seeded by the caller, so a call
with the same seed gives the same scores (models/evaluation/lgcd.py ranks with it).
"""

from collections.abc import Sequence

import numpy as np
import torch

from models.lgcd.data import SequenceRow, collate
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

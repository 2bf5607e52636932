"""Negatives drawn for ranking: one rule shared by the stored candidate lists and LGCD's validation.

A module of its own below both stages, so that LGCD training (models/lgcd/) and the
evaluation (models/evaluation/) draw alike without one stage importing the other.
"""

import numpy as np


def sample_negatives(rng: np.random.Generator, universe: int, truth: int, n: int) -> np.ndarray:
    """Distinct ids of range(universe) without ``truth``: n in draw order, or all when fewer exist.

    One ``rng.choice`` call (none when every id is taken), shared by the stored candidate
    lists (models/evaluation/candidates.py) and LGCD's validation (models/lgcd/training.py).
    """
    if universe - 1 <= n:
        return np.delete(np.arange(universe), truth)
    picked = rng.choice(universe - 1, size=n, replace=False)
    return picked + (picked >= truth)  # skip the ground truth

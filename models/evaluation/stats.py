"""Small statistics for the report: mean and spread over seeds, a paired permutation test.

scipy is not a dependency; the paired sign-flip permutation test needs only numpy
and makes no normality assumption (per-user NDCG is far from normal: mostly zeros).
"""

from dataclasses import dataclass

import numpy as np


def mean_std(values: np.ndarray | list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (ddof=1; 0.0 for a single value)."""
    arr = np.asarray(values, dtype=np.float64)
    if arr.size == 0:
        return float("nan"), float("nan")
    return float(arr.mean()), float(arr.std(ddof=1)) if arr.size > 1 else 0.0


@dataclass(frozen=True)
class PairedTest:
    n: int  # paired observations (users)
    mean_a: float
    mean_b: float
    diff: float  # mean(a - b)
    p_value: float  # two-sided
    permutations: int
    wins: int  # users with a > b
    losses: int  # users with a < b


def paired_permutation_test(a: np.ndarray, b: np.ndarray, permutations: int = 10000,
                            seed: int = 0) -> PairedTest:
    """Two-sided sign-flip test of mean(a - b) = 0 for paired samples.

    Under the null each user's difference is equally likely to have either sign;
    the p-value is (1 + #{|mean of flipped diffs| >= |observed|}) / (1 + permutations),
    which is never 0 and is exact in expectation.
    """
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape or a.ndim != 1:
        raise ValueError(f"paired samples must be 1-d of equal length, got {a.shape} and {b.shape}")
    diff = a - b
    n = diff.size
    observed = abs(diff.mean()) if n else 0.0
    rng = np.random.default_rng(seed)
    extreme = 0
    for start in range(0, permutations, 1000):
        size = min(1000, permutations - start)
        signs = rng.integers(0, 2, size=(size, n), dtype=np.int8) * 2 - 1  # (P, n)
        means = np.abs(signs @ diff) / max(n, 1)
        extreme += int((means >= observed - 1e-12).sum())
    p = (1 + extreme) / (1 + permutations)
    return PairedTest(n=n, mean_a=float(a.mean()) if n else 0.0,
                      mean_b=float(b.mean()) if n else 0.0, diff=float(diff.mean()) if n else 0.0,
                      p_value=float(p), permutations=permutations,
                      wins=int((diff > 0).sum()), losses=int((diff < 0).sum()))

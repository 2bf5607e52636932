"""Mean ± std over seeds and the paired permutation test."""

import numpy as np
import pytest

from models.evaluation.stats import mean_std, paired_permutation_test


def test_mean_std_uses_the_sample_deviation():
    assert mean_std([1.0, 2.0, 3.0]) == (2.0, 1.0)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_identical_samples_are_not_significant():
    a = np.random.default_rng(0).random(200)
    t = paired_permutation_test(a, a.copy(), permutations=500)
    assert t.p_value == 1.0 and t.diff == 0.0 and t.wins == t.losses == 0


def test_a_consistent_gain_is_significant():
    rng = np.random.default_rng(1)
    b = rng.random(300)
    a = b + 0.05 + 0.01 * rng.standard_normal(300)
    t = paired_permutation_test(a, b, permutations=2000)
    assert t.p_value == pytest.approx(1 / 2001)  # no flipped mean reaches the observed one
    assert t.diff == pytest.approx(0.05, abs=0.005) and t.wins > 280


def test_noise_is_not_significant_and_the_test_is_reproducible():
    rng = np.random.default_rng(2)
    a, b = rng.random(100), rng.random(100)
    t1 = paired_permutation_test(a, b, permutations=3000, seed=4)
    t2 = paired_permutation_test(a, b, permutations=3000, seed=4)
    assert t1 == t2 and t1.p_value > 0.05


def test_matches_the_exact_sign_flip_distribution_on_a_tiny_sample():
    a, b = np.array([3.0, 1.0, 2.0]), np.array([0.0, 0.0, 0.0])
    # all 8 sign patterns: |mean| >= 2 only for all-plus and all-minus -> exact p = 2/8
    t = paired_permutation_test(a, b, permutations=20000, seed=0)
    assert t.p_value == pytest.approx(0.25, abs=0.01)


def test_unpaired_shapes_fail():
    with pytest.raises(ValueError, match="equal length"):
        paired_permutation_test(np.zeros(3), np.zeros(4))

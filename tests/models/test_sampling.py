"""Negatives for ranking: distinct, never the ground truth, all of them when the pool is small."""

import numpy as np
import pytest

from models.sampling import sample_negatives


@pytest.mark.parametrize(("universe", "truth", "n"), [(500, 0, 99), (500, 499, 99), (500, 250, 498)])
def test_negatives_are_distinct_in_range_and_skip_the_truth(universe, truth, n):
    picked = sample_negatives(np.random.default_rng(0), universe, truth, n)
    assert len(picked) == n == len(set(picked.tolist()))
    assert truth not in picked and picked.min() >= 0 and picked.max() < universe


def test_a_small_pool_gives_every_other_item_in_order_and_draws_nothing():
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert sample_negatives(rng, 6, 2, 10).tolist() == [0, 1, 3, 4, 5]
    assert rng.bit_generator.state == state


def test_the_same_generator_state_gives_the_same_draws():
    a = sample_negatives(np.random.default_rng([1, 2]), 4500, 17, 999)
    b = sample_negatives(np.random.default_rng([1, 2]), 4500, 17, 999)
    np.testing.assert_array_equal(a, b)

"""The planted problem's training interactions, held-out users and candidate lists."""

import polars as pl
import pytest

from models.evaluation.baselines.common import Interactions
from models.evaluation.candidates import sample_all_seeds
from models.evaluation.ranking import eval_users
from tests.models.evaluation.baselines.planted import N_ITEMS, planted


@pytest.fixture(scope="package")
def data():
    """(training Interactions, held-out EvalUsers, 15-negative target-protocol lists of seed 0)."""
    seqs = planted()
    cands = sample_all_seeds(seqs.filter(pl.col("split") != "train"), N_ITEMS, 15, "target", (0,))
    return Interactions.from_sequences(seqs), eval_users(seqs), cands

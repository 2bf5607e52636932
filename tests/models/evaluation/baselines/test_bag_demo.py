"""The bag floor on the embedded demo: it must beat popularity, or the floor itself is broken."""

import dataclasses

import dagster as dg
import numpy as np
import polars as pl
import pytest

from app.definitions import build_definitions
from models.evaluation.baselines.bag import train_bag
from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.popularity import Popularity
from models.evaluation.candidates import sample_all_seeds
from models.evaluation.ranking import eval_users, rank_users, validation_ndcg
from models.metrics import ranking_metrics
from pipeline import settings, storage
from pipeline.config import DatasetConfig, load_dataset_config

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("one_torch_thread")]


def demo_sequences(root, instance, **synthetic) -> tuple[DatasetConfig, pl.DataFrame,
                                                         dict[str, int]]:
    """configs/demo.yaml (``synthetic`` overrides), its ``sequences`` and catalog sizes."""
    cfg = load_dataset_config(settings.PROJECT_ROOT / "configs" / "demo.yaml")
    cfg = dataclasses.replace(cfg, synthetic=dataclasses.replace(cfg.synthetic, **synthetic))
    job = build_definitions(cfg, root).resolve_implicit_global_asset_job_def()
    keys = ("raw_sources", "interactions", "items", "quarantine", "filtered_interactions",
            "filtered_items", "item_catalog", "sequences")
    result = job.execute_in_process(instance=instance, raise_on_error=False,
                                    asset_selection=[dg.AssetKey(k) for k in keys])
    assert result.success
    read = lambda key: storage.read(root / key / storage.latest_version(root, [key]))  # noqa: E731
    return cfg, read("sequences"), dict(read("item_catalog").group_by("domain").len().iter_rows())


def test_bag_beats_popularity_on_the_demo(storage_root, instance):
    cfg, sequences, sizes = demo_sequences(storage_root, instance)
    held = sequences.filter(pl.col("split") != "train")
    cands = sample_all_seeds(held, sizes, 999, ("target",), (0,))
    train, users = Interactions.from_sequences(sequences), eval_users(sequences)

    def pooled_ndcg(scorer) -> float:  # valid and test pooled: the demo holds out few users
        ranks = rank_users(scorer, users, cands, 0, "m")
        return ranking_metrics(ranks["rank"].to_numpy(), (10,))["ndcg@10"]

    popularity = pooled_ndcg(Popularity.fit(train, sizes))
    bags = [pooled_ndcg(train_bag(train, sizes, cfg.evaluation.bag, seed,
                                  lambda s: validation_ndcg(s, users, cands, 0))[0])
            for seed in (0, 1, 2)]
    assert len(users) >= 20
    assert np.mean(bags) > popularity, (bags, popularity)

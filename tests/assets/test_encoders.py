"""Embedding and encoder assets in real Dagster runs, on stub item_catalog and sequences."""

import base64
import dataclasses
import random
import re

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets import embeddings, encoders
from models.encoders.embedding_config import EmbeddingConfig
from models.encoders.pretraining import EncoderTrainConfig
from models.encoders.sequence import DomainEncoder, pad_sequences
from models.encoders.text_embedding import TextEmbedder
from pipeline import storage
from pipeline.io_managers import VersionedIOManager, VersionStore
from pipeline.resources import SentenceTransformerEmbedder
from tests.conftest import latest_materialization

N_ITEMS = {"A": 30, "B": 24}
WORDS = ["Tuscan", "Kyoto", "Bakery", "Espresso", "Texas", "Organic"]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def catalog_table() -> pl.DataFrame:
    rows = []
    for domain, n in N_ITEMS.items():
        noun = "Sauce" if domain == "A" else "Pan"
        for i in range(n):
            text = "" if (domain, i) == ("A", 3) else f"{WORDS[i % 6]} {noun} {i} | cat | brand"
            rows.append({"item": f"{domain}{i}", "domain": domain, "index": i,
                         "title": text.split(" | ")[0], "text": text})
    return pl.DataFrame(rows, schema_overrides={"index": pl.Int32})


def sequences_table(n_users: int = 60) -> pl.DataFrame:
    rng = random.Random(0)
    rows = []
    for u in range(n_users):
        domain = "A" if u % 2 == 0 else "B"
        start = rng.randrange(N_ITEMS[domain])
        items = [(start + k) % N_ITEMS[domain] for k in range(rng.randint(3, 7))]
        rows.append({"user": f"u{u}", "split": "train", "kind": "single", "items": items,
                     "domains": [domain] * len(items), "timestamps": list(range(len(items))),
                     "target_item": None, "target_domain": None, "source_domain": domain})
    return pl.DataFrame(rows, schema_overrides={"items": pl.List(pl.Int32),
                                                "target_item": pl.Int32,
                                                "target_domain": pl.String})


def stubs(catalog: pl.DataFrame, sequences: pl.DataFrame) -> list:
    @dg.asset(name="item_catalog", code_version="stub")
    def item_catalog(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(catalog)

    @dg.asset(name="sequences", code_version="stub")
    def sequences_(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(sequences)

    return [item_catalog, sequences_]


def graph(demo_cfg, root, sequences=None, **embedding):
    # LGCD reads the encoders' d-sized outputs: the config keeps the two consistent
    lgcd = dataclasses.replace(demo_cfg.lgcd,
                               model=dataclasses.replace(demo_cfg.lgcd.model, d=16, max_len=8))
    cfg = dataclasses.replace(
        demo_cfg, embedding=EmbeddingConfig(device="cpu", **embedding), lgcd=lgcd,
        encoder=EncoderTrainConfig(d=16, n_heads=2, n_layers=1, max_len=8, epochs=3, patience=3,
                                   batch_size=16, lr=5e-3, device="cpu"))
    store = VersionStore(root=str(root))
    assets = [*stubs(catalog_table(), sequences if sequences is not None else sequences_table()),
              *embeddings.build(cfg), *encoders.build(cfg)]
    return assets, {"store": store, "io_manager": VersionedIOManager(store=store),
                    "text_embedder": SentenceTransformerEmbedder.from_config(cfg.embedding)}


@pytest.mark.slow
def test_embeddings_and_encoders_materialize_per_domain(demo_cfg, storage_root, instance):
    assets, resources = graph(demo_cfg, storage_root)
    assert dg.materialize(assets, resources=resources, instance=instance).success

    emb = latest_materialization(instance, "item_text_embeddings_a").metadata
    assert emb["cache_misses"].value == 30 and emb["encoded_texts"].value == 30
    assert emb["empty_texts"].value == 1 and emb["dim"].value == 384
    runtime = TextEmbedder(demo_cfg.embedding).runtime  # what this machine runs
    assert (emb["backend"].value, emb["dtype"].value) == (runtime.backend, runtime.dtype)
    assert emb["backend_fallback"].value == "none"
    table = storage.read(emb["path"].value)
    assert table.columns == ["item", "index", "embedding"] and table.height == 30

    meta = latest_materialization(instance, "sequence_encoder_a").metadata
    assert 1 <= meta["best_epoch"].value <= meta["epochs_run"].value <= 3
    assert meta["train_sequences"].value + meta["valid_sequences"].value == 30
    assert "| 1" in meta["epochs"].value  # per-epoch table
    png = base64.b64decode(re.search(r"base64,([A-Za-z0-9+/=]+)\)",
                                     meta["training_curves"].value).group(1))
    assert png.startswith(b"\x89PNG") and len(png) < 60_000

    ckpt = storage.read(meta["path"].value)
    assert ckpt.extra["domain"] == "A" and len(ckpt.extra["history"]) == meta["epochs_run"].value
    enc = DomainEncoder.from_checkpoint(ckpt.state_dict, ckpt.config).eval()
    np.testing.assert_array_equal(enc.item_text.numpy(), table["embedding"].to_numpy())
    assert enc.encode(*pad_sequences([[1, 2, 3]], 8)).shape == (1, 16)
    assert enc.item_table().shape == (30, 16)

    # re-materializing the embeddings with unchanged items encodes nothing new
    first_version = latest_materialization(instance, "item_text_embeddings_b").metadata["version"].value
    only_b = [a for a in assets if a.key.path[0] in {"item_catalog", "item_text_embeddings_b"}]
    assert dg.materialize(only_b, resources=resources, instance=instance,
                          selection=["item_text_embeddings_b"]).success
    again = latest_materialization(instance, "item_text_embeddings_b").metadata
    assert again["cache_hits"].value == 24 and again["encoded_texts"].value == 0
    assert again["version"].value == first_version  # same content, same version


@pytest.mark.slow
def test_one_domain_materializes_without_the_other(demo_cfg, storage_root, instance):
    assets, resources = graph(demo_cfg, storage_root)
    selection = ["item_catalog", "sequences", "item_text_embeddings_b", "sequence_encoder_b"]
    assert dg.materialize(assets, resources=resources, instance=instance,
                          selection=selection).success
    assert instance.get_latest_materialization_event(dg.AssetKey("sequence_encoder_a")) is None
    assert latest_materialization(instance, "sequence_encoder_b").metadata["train_sequences"].value > 0


def failure_message(result) -> str:
    return " ".join(e.step_failure_data.error.message for e in result.all_events
                    if e.is_step_failure)


def test_missing_model_folder_fails_with_its_path(demo_cfg, storage_root, instance, tmp_path):
    missing = tmp_path / "models" / "jina"
    assets, resources = graph(demo_cfg, storage_root, model=str(missing))
    result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False,
                            selection=["item_catalog", "item_text_embeddings_a"])
    assert not result.success
    assert f"text embedding model folder {missing} does not exist" in failure_message(result)


@pytest.mark.slow
def test_too_few_sequences_fails_naming_domain_and_count(demo_cfg, storage_root, instance):
    assets, resources = graph(demo_cfg, storage_root, sequences=sequences_table(n_users=8))
    result = dg.materialize(assets, resources=resources, instance=instance, raise_on_error=False,
                            selection=["item_catalog", "sequences", "item_text_embeddings_a",
                                       "sequence_encoder_a"])
    assert not result.success
    assert "domain A: only 4 training sequences" in failure_message(result)

"""``item_text_embeddings_{a,b}`` through the text embedder resource, hashed and real."""

import dataclasses

import dagster as dg
import numpy as np
import polars as pl
import pytest

from assets import embeddings
from models.data.schema import ITEM_TEXT_EMBEDDINGS
from models.encoders.embedding_config import EmbeddingConfig
from pipeline import storage
from pipeline.resources import HashingTextEmbedder, SentenceTransformerEmbedder
from pipeline.versioning import code_version
from tests.assets.stubs import N_ITEMS, catalog_table, table_asset
from tests.assets.stubs import storage as storage_resources
from tests.conftest import latest_materialization

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def materialize(cfg, root, instance, embedder, catalog=None, selection=None) -> dg.ExecuteInProcessResult:
    assets = [table_asset("item_catalog", catalog_table() if catalog is None else catalog),
              *embeddings.build(cfg)]
    return dg.materialize(assets, resources={**storage_resources(root), "text_embedder": embedder},
                          instance=instance, selection=selection)


def test_each_domain_is_embedded_by_index_through_the_cache(demo_cfg, storage_root, instance):
    embedder = HashingTextEmbedder.from_config(demo_cfg.embedding, dim=16)
    assert materialize(demo_cfg, storage_root, instance, embedder).success
    catalog = catalog_table()
    for domain in ("A", "B"):
        meta = latest_materialization(instance, embeddings.asset_name(domain)).metadata
        assert meta["model_identity"].value == "hashing-16-normalize=True"
        assert meta["cache"].value == f".cache/embeddings/{meta['model_identity'].value}"
        assert (meta["dim"].value, meta["cache_misses"].value) == (16, N_ITEMS[domain])
        table = storage.read(meta["path"].value)
        assert table.columns == list(ITEM_TEXT_EMBEDDINGS)
        rows = catalog.filter(pl.col("domain") == domain).sort("index")
        assert table["item"].to_list() == rows["item"].to_list()
        expected, _ = HashingTextEmbedder.from_config(demo_cfg.embedding, dim=16).embed(rows["text"].to_list())
        np.testing.assert_array_equal(table["embedding"].to_numpy(), expected)

    first = latest_materialization(instance, "item_text_embeddings_b").metadata["version"].value
    again = HashingTextEmbedder.from_config(demo_cfg.embedding, dim=16)
    assert materialize(demo_cfg, storage_root, instance, again,
                       selection=["item_text_embeddings_b"]).success
    meta = latest_materialization(instance, "item_text_embeddings_b").metadata
    assert (meta["cache_hits"].value, meta["encoded_texts"].value) == (N_ITEMS["B"], 0)
    assert meta["version"].value == first


def test_code_version_is_the_real_embedders_identity(demo_cfg):
    cfg = demo_cfg.embedding
    identity = SentenceTransformerEmbedder.from_config(cfg).identity
    versions = {a.key.to_user_string(): a.code_versions_by_key[a.key] for a in embeddings.build(demo_cfg)}
    expected = code_version("emb1", identity, cfg.normalize, cfg.max_seq_length)
    assert versions == {"item_text_embeddings_a": expected, "item_text_embeddings_b": expected}


def test_real_model_embeds_a_few_titles(demo_cfg, storage_root, instance):
    """The packaged MiniLM on CPU: unit vectors of width 384, reported runtime, related titles closer."""
    catalog = pl.DataFrame({"item": ["A0", "A1", "A2", "B0"], "domain": ["A", "A", "A", "B"],
                            "index": [0, 1, 2, 0], "title": ["Basil Pesto Sauce", "Genovese Pesto",
                                                             "Cast Iron Skillet", "Frying Pan"],
                            "text": [None, None, None, None]}, schema_overrides={"index": pl.Int32,
                                                                                 "text": pl.String})
    cfg = dataclasses.replace(demo_cfg, embedding=EmbeddingConfig(device="cpu"))
    embedder = SentenceTransformerEmbedder.from_config(cfg.embedding)
    assert materialize(cfg, storage_root, instance, embedder, catalog,
                       ["item_catalog", "item_text_embeddings_a"]).success
    meta = latest_materialization(instance, "item_text_embeddings_a").metadata
    assert meta["dim"].value == 384 and meta["encoded_texts"].value == 3
    assert (meta["backend"].value, meta["dtype"].value) == (embedder.runtime.backend, embedder.runtime.dtype)
    assert meta["model_identity"].value == embedder.identity
    vectors = storage.read(meta["path"].value)["embedding"].to_numpy()
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, rtol=1e-5)
    assert vectors[0] @ vectors[1] > vectors[0] @ vectors[2]  # two pestos, then a skillet


def test_missing_model_folder_fails_the_asset_with_its_path(demo_cfg, storage_root, instance, tmp_path):
    missing = tmp_path / "models" / "jina"
    cfg = dataclasses.replace(demo_cfg, embedding=EmbeddingConfig(model=str(missing)))
    result = dg.materialize([table_asset("item_catalog", catalog_table()), *embeddings.build(cfg)],
                            resources={**storage_resources(storage_root),
                                       "text_embedder": SentenceTransformerEmbedder.from_config(cfg.embedding)},
                            instance=instance, raise_on_error=False,
                            selection=["item_catalog", "item_text_embeddings_a"])
    messages = [e.step_failure_data.error.message for e in result.all_events if e.is_step_failure]
    assert not result.success
    assert any(f"text embedding model folder {missing} does not exist" in m for m in messages)

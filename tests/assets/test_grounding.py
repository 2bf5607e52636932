"""``pseudo_sequences``: guessed titles embedded by the text embedder resource, grounded to items."""

import dataclasses

import dagster as dg
import polars as pl
import pytest
import torch

from assets import embeddings, grounding
from assets.encoders import asset_name as encoder_asset
from models.encoders.sequence import DomainEncoder, EncoderConfig
from pipeline import storage
from pipeline.io_managers import VersionStore
from pipeline.resources import HashingTextEmbedder
from pipeline.storage import Checkpoint
from tests.assets.stubs import N_ITEMS, SINGLE_USERS, catalog_table, sequences_table, table_asset, title
from tests.assets.stubs import storage as storage_resources
from tests.conftest import latest_materialization

pytestmark = pytest.mark.usefixtures("one_torch_thread")
DIM = 64


def generations_table() -> pl.DataFrame:
    """One guess per A user, the title of item B u+3 (a1 has none usable); two per B user."""
    rows = [{"id": f"A>B:a{u}", "user": f"a{u}", "source_domain": "A", "target_domain": "B",
             "titles": [] if u == 1 else [title("B", u + 3)]} for u in range(SINGLE_USERS)]
    rows += [{"id": f"B>A:b{u}", "user": f"b{u}", "source_domain": "B", "target_domain": "A",
              "titles": [title("A", u + 2), title("A", 5)]} for u in range(SINGLE_USERS)]
    return pl.DataFrame(rows, schema_overrides={"titles": pl.List(pl.String)})


def encoder_stub(domain: str) -> dg.AssetsDefinition:
    """An untrained encoder over the domain's item embeddings (grounding only reads it)."""

    @dg.asset(name=encoder_asset(domain), code_version="stub",
              ins={"emb": dg.AssetIn(embeddings.asset_name(domain))})
    def encoder(store: VersionStore, emb: pl.DataFrame) -> dg.MaterializeResult:
        torch.manual_seed(0)
        cfg = EncoderConfig(n_items=N_ITEMS[domain], text_dim=DIM, d=16, n_heads=2, n_layers=1, max_len=8)
        model = DomainEncoder(cfg, item_text=torch.tensor(emb.sort("index")["embedding"].to_numpy()))
        return store.publish(Checkpoint(*model.to_checkpoint()))

    return encoder


def materialize(cfg, root, instance, selection) -> dg.ExecuteInProcessResult:
    assets = [table_asset("item_catalog", catalog_table()), table_asset("sequences", sequences_table()),
              table_asset("pseudo_generations", generations_table()), *embeddings.build(cfg),
              encoder_stub("A"), encoder_stub("B"),
              *(a for a in grounding.build(cfg) if a.key == dg.AssetKey("pseudo_sequences"))]
    embedder = HashingTextEmbedder.from_config(cfg.embedding, dim=DIM)
    return dg.materialize(assets, resources={**storage_resources(root), "text_embedder": embedder},
                          instance=instance, selection=selection)


@pytest.fixture
def per_title(demo_cfg):
    return dataclasses.replace(demo_cfg, grounding=dataclasses.replace(demo_cfg.grounding, mode="per_title"))


def test_titles_are_grounded_to_their_nearest_items(per_title, storage_root, instance):
    assert materialize(per_title, storage_root, instance, None).success
    meta = latest_materialization(instance, "pseudo_sequences").metadata
    assert (meta["users"].value, meta["fallback_users"].value) == (2 * SINGLE_USERS, 1)
    assert meta["embedded_titles"].value == (SINGLE_USERS - 1) + 2 * SINGLE_USERS
    rows = {r["user"]: r for r in storage.read(meta["path"].value).iter_rows(named=True)}
    for u in (0, 2, 3, 4):  # a title is nearest to its own item's text ("<title> | cat | brand")
        assert rows[f"a{u}"]["pseudo_items"][0] == u + 3 and not rows[f"a{u}"]["fallback"]
    assert rows["a1"]["fallback"]
    assert meta["n_k"].value == per_title.pseudo_items_retrieved == 20  # the demo sweep's largest nK
    for user, row in rows.items():
        target = row["target_domain"]
        assert len(row["pseudo_items"]) == min(per_title.pseudo_items_retrieved, N_ITEMS[target])
        assert len(row["items"]) == 3 + len(row["pseudo_items"])
        pseudo = [i for i, flag in zip(row["items"], row["is_pseudo"], strict=True) if flag]
        assert pseudo == row["pseudo_items"], user
        assert [d for d, flag in zip(row["domains"], row["is_pseudo"], strict=True) if flag] == (
            [target] * len(pseudo))


def test_regrounding_embeds_no_title_twice(demo_cfg, storage_root, instance):
    assert materialize(demo_cfg, storage_root, instance, None).success
    first = latest_materialization(instance, "pseudo_sequences").metadata
    assert first["title_cache_hits"].value == 0
    assert materialize(demo_cfg, storage_root, instance, ["pseudo_sequences"]).success
    again = latest_materialization(instance, "pseudo_sequences").metadata
    assert again["title_cache_hits"].value == first["embedded_titles"].value
    assert again["version"].value == first["version"].value

"""Stage 3c: pseudo-overlap sequences, the LLM guesses grounded to real items (eqs. 5-6).

Guessed titles are embedded with the same embedder and cache as the items, so
re-grounding after a retrieval-only change encodes nothing new.
"""

import dagster as dg
import numpy as np
import polars as pl

from assets import groups
from assets.embeddings import CACHE_DIR
from assets.embeddings import asset_name as embeddings_asset
from assets.encoders import asset_name as encoder_asset
from models.grounding import ground
from models.sequence_encoder import DomainEncoder
from models.text_embedding import EmbeddingError, TextEmbedder
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint
from pipeline.versioning import code_version


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    ins = {f"emb_{d.lower()}": dg.AssetIn(key=embeddings_asset(d)) for d in ("A", "B")}
    ins |= {f"enc_{d.lower()}": dg.AssetIn(key=encoder_asset(d)) for d in ("A", "B")}

    @dg.asset(group_name=groups.PSEUDO, ins=ins, kinds={"faiss", "parquet"},
              code_version=code_version("ground1", cfg.grounding, cfg.embedding))
    def pseudo_sequences(context: dg.AssetExecutionContext, store: VersionStore,
                         pseudo_generations: pl.DataFrame, sequences: pl.DataFrame,
                         emb_a: pl.DataFrame, emb_b: pl.DataFrame, enc_a: Checkpoint,
                         enc_b: Checkpoint) -> dg.MaterializeResult:
        """Single-domain sequences with nK grounded target items inserted, flagged as pseudo."""
        item_emb = {d: t.sort("index")["embedding"].to_numpy().astype(np.float32)
                    for d, t in (("A", emb_a), ("B", emb_b))}
        encoders = {d: DomainEncoder.from_checkpoint(c.state_dict, c.config).eval()
                    for d, c in (("A", enc_a), ("B", enc_b))}
        usable = pseudo_generations.filter(pl.col("titles").list.len() > 0)
        flat = usable.select("id", "titles").explode("titles")
        with user_errors(EmbeddingError):
            vectors, emb_stats = TextEmbedder(cfg.embedding).embed(
                flat["titles"].to_list(), cache_root=store.path().joinpath(*CACHE_DIR))
        bounds = np.cumsum([0, *usable["titles"].list.len().to_list()])
        title_vectors = {rid: vectors[bounds[i]:bounds[i + 1]] for i, rid in enumerate(usable["id"])}
        table, stats = ground(pseudo_generations, sequences, title_vectors, item_emb, item_emb,
                              encoders, cfg.grounding)
        context.log.info(f"grounded {stats.users} users, {stats.fallback_users} on their own text")
        return store.publish(
            table, users=stats.users, fallback_users=stats.fallback_users,
            mean_top1_cosine=round(stats.mean_top1_cosine, 4), n_k=cfg.grounding.n_k,
            mode=cfg.grounding.mode, index=cfg.grounding.index.kind,
            index_recall_at_k=stats.index_recall_at_k, embedded_titles=len(flat),
            title_cache_hits=emb_stats.cache_hits,
            distinct_pseudo_items=int(table["pseudo_items"].explode().n_unique()) if table.height else 0)

    return [pseudo_sequences]

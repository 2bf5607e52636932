"""Stage 3c: pseudo-overlap sequences, the LLM guesses grounded to real items (eqs. 5-6).

``pseudo_sequences`` holds the LLM's guesses; where a variant asks for them,
``pseudo_sequences_retrieval`` (the same users) and ``pseudo_sequences_retrieval_all``
(every single-domain training user) hold the no-LLM counterfactual.

Guessed titles are embedded with the same embedder and cache as the items, so
re-grounding after a retrieval-only change encodes nothing new.
"""

import dataclasses

import dagster as dg
import numpy as np
import polars as pl

from assets import groups
from assets.embeddings import CACHE_DIR
from assets.embeddings import asset_name as embeddings_asset
from assets.encoders import asset_name as encoder_asset
from models.encoders.embedding_config import EmbeddingError
from models.encoders.sequence import DomainEncoder, encoders_from_checkpoints
from models.pseudo.grounding import GroundingStats, ground, retrieval_requests
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_CHAIN, priority
from pipeline.io_managers import VersionStore
from pipeline.resources import TextEmbedderResource
from pipeline.storage import Checkpoint
from pipeline.versioning import code_version


def pseudo_asset(source: str) -> str | None:
    """Name of the pseudo-sequence asset an LGCD ``pseudo_source`` reads (None for none)."""
    return {"llm": "pseudo_sequences", "retrieval": "pseudo_sequences_retrieval",
            "retrieval_all": "pseudo_sequences_retrieval_all", "none": None}[source]


def _item_inputs(emb_a: pl.DataFrame, emb_b: pl.DataFrame, enc_a: Checkpoint, enc_b: Checkpoint
                 ) -> tuple[dict[str, np.ndarray], dict[str, DomainEncoder]]:
    item_emb = {d: t.sort("index")["embedding"].to_numpy().astype(np.float32)
                for d, t in (("A", emb_a), ("B", emb_b))}
    encoders = encoders_from_checkpoints({"A": enc_a, "B": enc_b})
    return item_emb, encoders


def _settings(cfg: DatasetConfig) -> dict:
    """What decides the grounded items: the grounding section plus how many items it retrieves."""
    return {**dataclasses.asdict(cfg.grounding), "n_k": cfg.pseudo_items_retrieved}


def _summary(table: pl.DataFrame, stats: GroundingStats, cfg: DatasetConfig) -> dict:
    return dict(users=stats.users, fallback_users=stats.fallback_users,
                mean_top1_cosine=round(stats.mean_top1_cosine, 4), n_k=cfg.pseudo_items_retrieved,
                mode=cfg.grounding.mode, index=cfg.grounding.index.kind,
                index_recall_at_k=stats.index_recall_at_k,
                distinct_pseudo_items=int(table["pseudo_items"].explode().n_unique())
                if table.height else 0)


def _retrieval_asset(cfg: DatasetConfig, source: str, ins: dict) -> dg.AssetsDefinition:
    """``pseudo_source`` retrieval (the LLM sample's users) or retrieval_all (every one).

    The nK target items nearest to the user's own source text (eqs 5-6 on the source
    titles): the LLM's counterfactual. retrieval_all does not wait for the LLM stage.
    """

    def run(context: dg.AssetExecutionContext, store: VersionStore, sequences: pl.DataFrame,
            users: pl.DataFrame | None, emb: tuple, enc: tuple) -> dg.MaterializeResult:
        item_emb, encoders = _item_inputs(*emb, *enc)
        table, stats = ground(retrieval_requests(sequences, users), sequences, {}, item_emb,
                              item_emb, encoders, cfg.grounding, cfg.pseudo_items_retrieved)
        context.log.info(f"{source}: grounded {stats.users} users on their own source text")
        return store.publish(table, pseudo_source=source, **_summary(table, stats, cfg))

    decorate = dg.asset(name=pseudo_asset(source), group_name=groups.PSEUDO, ins=ins,
                        kinds={"faiss", "parquet"}, description=_retrieval_asset.__doc__,
                        op_tags=priority(PRIORITY_CHAIN),
                        code_version=code_version("ground1", source, _settings(cfg),
                                                  cfg.embedding))
    if source == "retrieval":
        @decorate
        def sampled(context: dg.AssetExecutionContext, store: VersionStore,
                    pseudo_generations: pl.DataFrame, sequences: pl.DataFrame,
                    emb_a: pl.DataFrame, emb_b: pl.DataFrame, enc_a: Checkpoint,
                    enc_b: Checkpoint) -> dg.MaterializeResult:
            return run(context, store, sequences, pseudo_generations, (emb_a, emb_b),
                       (enc_a, enc_b))
        return sampled

    @decorate
    def every_user(context: dg.AssetExecutionContext, store: VersionStore,
                   sequences: pl.DataFrame, emb_a: pl.DataFrame, emb_b: pl.DataFrame,
                   enc_a: Checkpoint, enc_b: Checkpoint) -> dg.MaterializeResult:
        return run(context, store, sequences, None, (emb_a, emb_b), (enc_a, enc_b))
    return every_user


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    ins = {f"emb_{d.lower()}": dg.AssetIn(key=embeddings_asset(d)) for d in ("A", "B")}
    ins |= {f"enc_{d.lower()}": dg.AssetIn(key=encoder_asset(d)) for d in ("A", "B")}

    @dg.asset(group_name=groups.PSEUDO, ins=ins, kinds={"faiss", "parquet"},
              op_tags=priority(PRIORITY_CHAIN),
              code_version=code_version("ground1", _settings(cfg), cfg.embedding))
    def pseudo_sequences(context: dg.AssetExecutionContext, store: VersionStore,
                         text_embedder: TextEmbedderResource, pseudo_generations: pl.DataFrame, sequences: pl.DataFrame,
                         emb_a: pl.DataFrame, emb_b: pl.DataFrame, enc_a: Checkpoint,
                         enc_b: Checkpoint) -> dg.MaterializeResult:
        """Single-domain sequences with nK grounded target items inserted, flagged as pseudo."""
        item_emb, encoders = _item_inputs(emb_a, emb_b, enc_a, enc_b)
        usable = pseudo_generations.filter(pl.col("titles").list.len() > 0)
        flat = usable.select("id", "titles").explode("titles")
        with user_errors(EmbeddingError):
            vectors, emb_stats = text_embedder.embed(flat["titles"].to_list(),
                                                     cache_root=store.path().joinpath(*CACHE_DIR))
        bounds = np.cumsum([0, *usable["titles"].list.len().to_list()])
        title_vectors = {rid: vectors[bounds[i]:bounds[i + 1]] for i, rid in enumerate(usable["id"])}
        table, stats = ground(pseudo_generations, sequences, title_vectors, item_emb, item_emb,
                              encoders, cfg.grounding, cfg.pseudo_items_retrieved)
        context.log.info(f"grounded {stats.users} users, {stats.fallback_users} on their own text")
        return store.publish(table, pseudo_source="llm", **_summary(table, stats, cfg),
                             embedded_titles=len(flat), title_cache_hits=emb_stats.cache_hits)

    used = {spec.pseudo_source for spec in cfg.lgcd.variants} & {"retrieval", "retrieval_all"}
    return [pseudo_sequences, *(_retrieval_asset(cfg, s, ins) for s in sorted(used))]

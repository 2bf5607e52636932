"""Stage 2a: sentence embeddings of every item's text, one asset per domain.

One asset per domain, so a user can rebuild one domain alone. Encoding goes
through a cache in ``<storage root>/.cache/embeddings/<model identity>/``: a
re-materialization with unchanged item texts encodes nothing and does not even
load the model. The cache only saves time; the asset's output is an ordinary
content-addressed version.
"""

from pathlib import Path

import dagster as dg
import polars as pl

from assets import groups
from models.device import torch_threads
from models.encoders.embedding_config import EmbeddingError
from models.encoders.text_embedding import Progress, TextEmbedder, domain_items, item_texts
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_CHAIN, priority, step_threads
from pipeline.io_managers import CACHE, VersionStore
from pipeline.resources import TextEmbedderResource
from pipeline.versioning import code_version

CACHE_DIR = (".cache", "embeddings")
PROGRESS_EVERY_S = 10.0


def asset_name(domain: str) -> str:
    return f"item_text_embeddings_{domain.lower()}"


def _model_version(cfg: DatasetConfig) -> str:
    """Identity of the configured weights, so new weights in the same folder mark it unsynced.

    A model that cannot be found still lets the code location load; the asset
    then fails with the path named.
    """
    try:  # resolves the folder and the runtime only: the model loads on the first encode
        return TextEmbedder(cfg.embedding).identity
    except EmbeddingError:
        return f"unresolved:{cfg.embedding.model}"


def _embedding_asset(cfg: DatasetConfig, domain: str, model_version: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_name(domain),
        group_name=groups.ENCODERS,
        pool="gpu",
        op_tags=priority(PRIORITY_CHAIN),
        code_version=code_version("emb1", model_version, cfg.embedding.normalize,
                                  cfg.embedding.max_seq_length),
        kinds={"pytorch", "parquet"},
        description=f"Sentence embedding of the text of every domain-{domain} item, by item index.",
    )
    def item_text_embeddings(context: dg.AssetExecutionContext, store: VersionStore,
                             text_embedder: TextEmbedderResource, item_catalog: pl.DataFrame) -> dg.MaterializeResult:
        """Sentence embedding of the text of every item of one domain, by item index."""

        def log_progress(p: Progress) -> None:
            context.log.info(f"domain {domain}: encoded {p.done}/{p.total} texts, "
                             f"{p.items_per_s:.0f} items/s, ETA {p.eta_s:.0f} s")

        with user_errors(EmbeddingError), torch_threads(step_threads(0)):
            rows = domain_items(item_catalog, domain)
            texts = item_texts(rows["text"].to_list(), rows["title"].to_list())
            matrix, stats = text_embedder.embed(texts, cache_root=store.path().joinpath(*CACHE_DIR),
                                                progress=log_progress, progress_every_s=PROGRESS_EVERY_S)
        runtime = text_embedder.runtime
        if runtime.fallback:
            context.log.warning(f"domain {domain}: {runtime.fallback}")
        if stats.empty_texts:
            context.log.warning(f"domain {domain}: {stats.empty_texts} items have no text; they "
                                "share the model's empty-text embedding")
        table = pl.DataFrame({"item": rows["item"], "index": rows["index"].cast(pl.Int32),
                              "embedding": matrix})
        return store.publish(
            table, domain=domain, model=cfg.embedding.model, model_identity=text_embedder.identity,
            **{CACHE: str(Path(*CACHE_DIR, text_embedder.identity))},
            dim=int(matrix.shape[1]), cache_hits=stats.cache_hits, cache_misses=stats.cache_misses,
            encoded_texts=stats.encoded, empty_texts=stats.empty_texts,
            encode_seconds=round(stats.encode_seconds, 3), items_per_s=round(stats.items_per_s, 1),
            model_load_seconds=round(stats.load_seconds, 3), backend=runtime.backend,
            dtype=runtime.dtype, backend_fallback=runtime.fallback or "none")

    return item_text_embeddings


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    version = _model_version(cfg)
    return [_embedding_asset(cfg, domain, version) for domain in ("A", "B")]

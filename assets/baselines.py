"""Stage 5b: baselines, each trained per seed and ranked on the stored candidate lists.

One asset per configured baseline (``evaluation.baselines``), so a slow one
(SASRec, GRU4Rec) can be re-run alone; every one ranks the same users on the same
``eval_candidates`` with the same code as LGCD (models/evaluation/ranking.py), each fitted
model under every protocol. Early stopping reads the primary protocol's validation
lists only, so the model selected does not depend on which other protocols are shown.
"""

import time

import dagster as dg
import polars as pl

from assets import groups
from assets.encoders import asset_name as encoder_asset
from assets.evaluation import n_items, rank_metadata
from models.device import torch_threads
from models.encoders.sequence import encoders_from_checkpoints
from models.evaluation.baselines.common import Interactions
from models.evaluation.baselines.fit import fit_baseline
from models.evaluation.candidates import protocol_lists
from models.evaluation.ranking import eval_users, rank_users
from models.report.figures import history_png, png_markdown
from models.train import TrainingDivergedError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_LONG, priority, step_threads
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint
from pipeline.versioning import code_version

DESCRIPTIONS = {
    "popularity": "Most popular target-domain items (training interaction counts).",
    "target_popularity": "Most popular target-domain items among overlapping training users.",
    "item_knn": "Cross-domain item-KNN on co-occurrence among overlapping training users.",
    "bag": "Bag-of-source-items floor: mean of source-item embeddings mapped to target items, "
           "with an item bias, trained on overlapping users.",
    "sasrec": "SASRec trained on mixed sequences over a joint item vocabulary.",
    "gru4rec": "GRU4Rec trained on mixed sequences over a joint item vocabulary.",
    "emcdr": "EMCDR-style MLP mapping pre-trained source representations to the target space.",
}


def _fit_markdown(fits: list[tuple[int, object, float]]) -> str:
    lines = ["| seed | best epoch | val NDCG@10 | validations | s |", "|---:|---:|---:|---:|---:|"]
    for seed, fitted, seconds in fits:
        val = "–" if fitted.val_ndcg10 is None else f"{fitted.val_ndcg10:.4f}"
        lines.append(f"| {seed} | {fitted.best_epoch} | {val} | {len(fitted.history)} "
                     f"| {seconds:.1f} |")
    return "\n".join(lines)


def _curves_markdown(fits: list[tuple[int, object, float]], name: str) -> str:
    """One PNG per seed: training loss and validation NDCG@10 per validation."""
    return "\n\n".join(
        png_markdown(history_png(fitted.history, f"{name}, seed {seed}", fitted.best_epoch,
                                 {"NDCG@10": "val_ndcg@10"}), f"{name} seed {seed}")
        for seed, fitted, _ in fits)


def _epoch_logger(context: dg.AssetExecutionContext, name: str, seed: int):
    def log(row: dict[str, float]) -> None:
        context.log.info(f"{name} seed {seed} epoch {row['epoch']:g}: loss {row['loss']:.4f}, "
                         f"val NDCG@10 {row['val_ndcg@10']:.4f} ({row['seconds']:.1f} s)")
    return log


def _baseline_asset(cfg: DatasetConfig, name: str) -> dg.AssetsDefinition:
    ev = cfg.evaluation
    settings = {"sasrec": ev.sequential, "gru4rec": ev.sequential, "emcdr": ev.emcdr,
                "bag": ev.bag}.get(name)
    ins = {"enc_a": dg.AssetIn(key=encoder_asset("A")), "enc_b": dg.AssetIn(key=encoder_asset("B"))} \
        if name == "emcdr" else {}

    @dg.asset(name=f"ranks_{name}", group_name=groups.BASELINES, ins=ins,
              kinds={"pytorch", "parquet"} if settings else {"polars", "parquet"},
              code_version=code_version("base3", name, settings, ev.seeds, ev.protocols),
              op_tags=priority(PRIORITY_LONG if name in ("sasrec", "gru4rec") else 0),
              description=DESCRIPTIONS[name])
    def baseline(context: dg.AssetExecutionContext, store: VersionStore, sequences: pl.DataFrame,
                 item_catalog: pl.DataFrame, eval_candidates: pl.DataFrame,
                 **encoder_ckpts: Checkpoint) -> dg.MaterializeResult:
        """Rank of the ground truth for every held-out user and protocol under one baseline, per seed."""
        train = Interactions.from_sequences(sequences)
        users = eval_users(sequences)
        sizes = n_items(item_catalog)
        with user_errors(ValueError):
            validation_lists = protocol_lists(eval_candidates, ev.primary)
        frames, fits = [], []
        with user_errors(ValueError, TrainingDivergedError), torch_threads(step_threads(ev.threads)):
            for seed in ev.seeds:
                began = time.perf_counter()
                encoders = None if not encoder_ckpts else encoders_from_checkpoints(
                    {"A": encoder_ckpts["enc_a"], "B": encoder_ckpts["enc_b"]})
                fitted = fit_baseline(name, train, sizes, ev, seed, users, validation_lists,
                                      encoders, on_epoch=_epoch_logger(context, name, seed),
                                      on_progress=context.log.info)
                frames.append(rank_users(fitted.scorer, users, eval_candidates, seed, name,
                                         ev.batch_size, ev.protocols))
                fits.append((seed, fitted, time.perf_counter() - began))
                context.log.info(f"{name} seed {seed}: best epoch {fitted.best_epoch}, "
                                 f"{fits[-1][2]:.1f} s")
        ranks = pl.concat(frames)
        return store.publish(ranks, **rank_metadata(
            ranks, cfg, fit_seconds=round(sum(f[2] for f in fits), 1),
            training=dg.MetadataValue.md(_fit_markdown(fits)),
            **({"training_curves": dg.MetadataValue.md(_curves_markdown(fits, name))}
               if any(f.history for _, f, _ in fits) else {})))

    return baseline


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    return [_baseline_asset(cfg, name) for name in cfg.evaluation.baselines]

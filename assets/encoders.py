"""Stage 2b: per-domain pre-trained sequence encoders (paper section 3.3.1), one checkpoint each.

One asset per domain, so a user can retrain one domain alone. Each trains on the
domain's part of every training user's history (single-domain users and the
within-domain sub-sequences of overlapping training users, never held-out users)
and early-stops on a held-out slice of those sequences;
the checkpoint is self-contained (it carries the item text embeddings) and loads
with ``DomainEncoder.from_checkpoint(ckpt.state_dict, ckpt.config)``.
"""

import dataclasses

import dagster as dg
import polars as pl
import torch

from assets import groups
from assets.embeddings import asset_name as embeddings_asset
from models.device import torch_threads
from models.encoders.pretraining import (
    EpochStats,
    TrainingDataError,
    TrainResult,
    domain_training_sequences,
    train_domain_encoder,
)
from models.report.figures import png_markdown, training_curves_png
from models.train import TrainingDivergedError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import PRIORITY_CHAIN, priority, step_threads
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint
from pipeline.versioning import code_version


def asset_name(domain: str) -> str:
    return f"sequence_encoder_{domain.lower()}"


def _history_markdown(result: TrainResult) -> str:
    single = any(e.hr10_single is not None for e in result.history)
    extra = " HR@10 single-domain users | NDCG@10 single-domain users |" if single else ""
    lines = ["| epoch | loss | HR@10 | NDCG@10 |" + extra + " s |",
             "|---:|---:|---:|---:|" + ("---:|---:|" if single else "") + "---:|"]
    for e in result.history:
        best = " **best**" if e.epoch == result.best_epoch else ""
        cells = f" {e.hr10_single:.4f} | {e.ndcg10_single:.4f} |" if single else ""
        lines.append(f"| {e.epoch:g}{best} | {e.loss:.4f} | {e.hr10:.4f} | {e.ndcg10:.4f} |"
                     f"{cells} {e.seconds:.1f} |")
    return "\n".join(lines)


def _curve_markdown(result: TrainResult, domain: str) -> str:
    h = result.history
    curves = {"HR@10": [e.hr10 for e in h], "NDCG@10": [e.ndcg10 for e in h]}
    if any(e.hr10_single is not None for e in h):
        curves["HR@10 single-domain users"] = [e.hr10_single for e in h]
    png = training_curves_png([e.epoch for e in h], [e.loss for e in h], curves,
                              f"sequence encoder, domain {domain}", result.best_epoch)
    return png_markdown(png, "training curves")


def _encoder_asset(cfg: DatasetConfig, domain: str) -> dg.AssetsDefinition:
    @dg.asset(
        name=asset_name(domain),
        group_name=groups.ENCODERS,
        pool="gpu",
        op_tags=priority(PRIORITY_CHAIN),
        code_version=code_version("enc2", cfg.encoder),
        ins={"embeddings": dg.AssetIn(key=embeddings_asset(domain))},
        kinds={"pytorch"},
        description=f"Pre-trained ID + text sequence encoder of domain {domain} with its "
                    "fusion layer (eqs. 1-3).",
    )
    def sequence_encoder(context: dg.AssetExecutionContext, store: VersionStore,
                         sequences: pl.DataFrame, embeddings: pl.DataFrame) -> dg.MaterializeResult:
        """Pre-trained ID + text sequence encoder of one domain with its fusion layer."""

        def log_epoch(e: EpochStats) -> None:
            context.log.info(f"domain {domain} epoch {e.epoch:g}: loss {e.loss:.4f}, "
                             f"val HR@10 {e.hr10:.4f}, NDCG@10 {e.ndcg10:.4f} ({e.seconds:.1f} s)")

        with user_errors(TrainingDataError, TrainingDivergedError), torch_threads(step_threads(0)):
            histories = domain_training_sequences(sequences, domain)
            item_text = torch.from_numpy(embeddings.sort("index")["embedding"].to_numpy().copy())
            result = train_domain_encoder(histories, item_text, cfg.encoder, domain, log_epoch,
                                          on_progress=context.log.info)
        # seconds stay out of the checkpoint: its version must depend on the weights only
        history = [{k: v for k, v in dataclasses.asdict(e).items() if k != "seconds"}
                   for e in result.history]
        extra = {"domain": domain, "best_epoch": result.best_epoch, "history": history,
                 "train_config": dataclasses.asdict(cfg.encoder)}
        ckpt = Checkpoint(result.state_dict, result.config, extra=extra)
        best = next(e for e in result.history if e.epoch == result.best_epoch)
        return store.publish(
            ckpt, domain=domain, best_epoch=result.best_epoch, epochs_run=len(result.history),
            val_hr10=best.hr10, val_ndcg10=best.ndcg10,
            **({"val_hr10_single_domain_users": best.hr10_single,
                "val_ndcg10_single_domain_users": best.ndcg10_single}
               if best.hr10_single is not None else {}),
            train_sequences=result.n_train,
            valid_sequences=result.n_valid, train_positions=result.n_positions,
            from_single_domain_users=result.n_single,
            from_overlapping_users=result.n_overlap, loss=result.loss,
            precision=result.precision,
            steps=result.steps, train_seconds=round(result.seconds, 1),
            steps_per_s=round(result.steps / result.seconds, 2) if result.seconds else 0.0,
            epochs=dg.MetadataValue.md(_history_markdown(result)),
            training_curves=dg.MetadataValue.md(_curve_markdown(result, domain)))

    return sequence_encoder


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    return [_encoder_asset(cfg, domain) for domain in ("A", "B")]

"""Stage 4: the LGCD model (paper sections 3.4-3.5), one checkpoint asset per trained model.

``full`` is ``lgcd_model``; every other entry of ``lgcd.variants`` (Table 3's
ablations, Figure 4's conditionings, Figure 5's targets, nK / T / lambda / expert
sweeps) is ``lgcd_model_<name>``, so one ``full_rebuild`` run trains them all and
the UI shows each with its own curves. The evaluation's seed replicas and Figure 3's
sweep points (models/evaluation/plan.py) are built here too, by the same factory.
Training writes ``last.pt`` after every epoch under
``<storage>/.cache/lgcd/<config + inputs hash>/``: a rerun after a crash resumes there.
Load a result with ``models.lgcd.checkpoint.lgcd_from_checkpoint``.
"""

import shutil

import dagster as dg
import polars as pl
import torch

from assets import groups
from assets.encoders import asset_name as encoder_asset
from assets.grounding import pseudo_asset
from models.device import resolve_device, torch_threads
from models.encoders.sequence import encoders_from_checkpoints
from models.lgcd.checkpoint import checkpoint_parts
from models.lgcd.fitting import LGCDDataError, LGCDFit, TrainingInProgressError, fit, history_markdown
from models.lgcd.model import LGCD
from models.lgcd.rows import training_rows, validation_rows
from models.lgcd.variants import LGCDStageConfig, VariantSpec
from models.report.figures import history_png, png_markdown
from models.train import TrainingDivergedError
from pipeline.config import DatasetConfig
from pipeline.errors import user_errors
from pipeline.executors import step_threads
from pipeline.io_managers import VersionStore
from pipeline.storage import Checkpoint, checkpoint_hash, latest_version
from pipeline.versioning import code_version, fingerprint

CACHE_DIR = (".cache", "lgcd")


def asset_name(variant: str) -> str:
    return "lgcd_model" if variant == "full" else f"lgcd_model_{variant}"


def _inputs(spec: VariantSpec) -> tuple[str, ...]:
    pseudo = pseudo_asset(spec.pseudo_source)
    return ("sequences", *([pseudo] if pseudo else []), encoder_asset("A"), encoder_asset("B"))


def _input_versions(context: dg.AssetExecutionContext, store: VersionStore,
                    spec: VariantSpec) -> dict[str, str]:
    """Content versions of the inputs, found as the IO manager finds them (record, else LATEST)."""
    out = {}
    for name in _inputs(spec):
        records = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(name)), limit=1).records
        meta = records[0].asset_materialization.metadata if records else {}
        out[name] = str(meta["version"].value) if "version" in meta else \
            str(latest_version(store.path(), [name]))
    return out


def _publish(store: VersionStore, spec: VariantSpec, model: LGCD, result: LGCDFit,
             rows: dict[str, int], skipped: list, versions: dict[str, str], device: torch.device,
             threads: int) -> dg.MaterializeResult:
    """The trained model as a checkpoint, with its validation, data and timing as metadata."""
    state, config, extra = checkpoint_parts(model, result, spec, versions, rows)
    res = result.train
    best = res.selected  # validation of the published weights
    return store.publish(
        Checkpoint(state, config, extra), variant=spec.name, preset=spec.preset,
        best_epoch=res.best_epoch, epochs_run=len(res.history), stopped_early=res.stopped_early,
        val_hr10=best["hr@10"], val_ndcg10=best["ndcg@10"],
        **{f"val_ndcg10_{d}": best[f"ndcg@10/{d}"] for d in ("AB", "BA") if f"ndcg@10/{d}" in best},
        train_overlap_rows=rows["overlap"], train_pseudo_rows=rows["pseudo"], valid_rows=rows["valid"],
        skipped_rows=rows["skipped"], skipped_example=str(skipped[:1]),
        steps=res.steps, steps_per_epoch=result.steps_per_epoch,
        steps_per_s=round(result.steps_per_s, 3), train_seconds=round(result.train_seconds, 1),
        valid_seconds=round(result.eval_seconds, 1), device=str(device), cpu_threads=threads,
        resumed_from=res.resumed_from if res.resumed_from is not None else -1,
        encoder_versions=dg.MetadataValue.json(versions),
        best_epochs=dg.MetadataValue.json(res.best_epochs),
        epochs=dg.MetadataValue.md(history_markdown(res.history, res.best_epoch, res.best_epochs)),
        training_curves=dg.MetadataValue.md(png_markdown(
            history_png(res.history, f"LGCD {spec.name}", res.best_epoch), "training curves")))


def _fit_and_publish(context: dg.AssetExecutionContext, store: VersionStore, stage: LGCDStageConfig,
                     spec: VariantSpec, sequences: pl.DataFrame, pseudo: pl.DataFrame | None,
                     enc_a: Checkpoint, enc_b: Checkpoint) -> dg.MaterializeResult:
    """LGCD trained on real + pseudo overlap users, early-stopped on valid NDCG@10."""
    model_cfg = stage.variant_config(spec)
    ckpts = {"A": enc_a, "B": enc_b}
    train, skipped = training_rows(sequences, pseudo, model_cfg.n_k,
                                   spec.overlap_ratio, model_cfg.seed)
    valid, skipped_valid = validation_rows(sequences, stage.max_valid_users, model_cfg.seed)
    key = fingerprint(model_cfg, spec, stage.valid_negatives, stage.max_valid_users,
                      _input_versions(context, store, spec))
    ckpt_dir = store.path().joinpath(*CACHE_DIR, key)

    def log_epoch(h: dict) -> None:
        context.log.info(f"{spec.name} epoch {h['epoch']}: loss {h['loss_total']:.4f}, val "
                         f"HR@10 {h['hr@10']:.4f}, NDCG@10 {h['ndcg@10']:.4f} ({h['seconds']:.1f} s)")

    with user_errors(ValueError):
        device = resolve_device(stage.device)
    with user_errors(LGCDDataError, TrainingInProgressError, TrainingDivergedError), \
            torch_threads(step_threads(stage.threads)) as threads:
        context.log.info(f"{spec.name}: {len(train)} training rows, {len(valid)} valid rows, "
                         f"device {device}, {threads} CPU threads, checkpoints in {ckpt_dir}")
        # LGCD puts its frozen encoders in eval mode itself, whatever mode they arrive in
        model, result = fit(model_cfg, encoders_from_checkpoints(ckpts), train, valid, device,
                            ckpt_dir, stage.valid_negatives, log_epoch, context.log.info)
    kinds = [r.kind for r in train]
    rows = {"overlap": kinds.count("overlap"), "pseudo": kinds.count("pseudo"),
            "valid": len(valid), "skipped": len(skipped) + len(skipped_valid)}
    versions = {d: checkpoint_hash(c) for d, c in ckpts.items()}
    published = _publish(store, spec, model, result, rows, skipped + skipped_valid, versions,
                         device, threads)
    shutil.rmtree(ckpt_dir, ignore_errors=True)  # published; the resume point is no longer needed
    return published


def _lgcd_asset(cfg: DatasetConfig, spec: VariantSpec) -> dg.AssetsDefinition:
    stage = cfg.lgcd
    decorate = dg.asset(
        name=asset_name(spec.name),
        group_name=groups.LGCD,
        pool="gpu",
        code_version=code_version("lgcd2", stage.variant_config(spec), spec, stage.valid_negatives,
                                  stage.max_valid_users),
        ins={"enc_a": dg.AssetIn(key=encoder_asset("A")), "enc_b": dg.AssetIn(key=encoder_asset("B")),
             **({"pseudo": dg.AssetIn(key=pseudo_asset(spec.pseudo_source))}
                if pseudo_asset(spec.pseudo_source) else {})},
        kinds={"pytorch"},
        description=f"LGCD variant '{spec.name}' (preset {spec.preset}, pseudo users from "
                    f"{spec.pseudo_source}) trained in both directions.",
    )

    if pseudo_asset(spec.pseudo_source) is None:
        @decorate
        def lgcd_model(context: dg.AssetExecutionContext, store: VersionStore,
                       sequences: pl.DataFrame, enc_a: Checkpoint,
                       enc_b: Checkpoint) -> dg.MaterializeResult:
            """LGCD trained on the real overlapping users only (pseudo_source: none)."""
            return _fit_and_publish(context, store, stage, spec, sequences, None, enc_a, enc_b)
        return lgcd_model

    @decorate
    def lgcd_model(context: dg.AssetExecutionContext, store: VersionStore,
                   sequences: pl.DataFrame, pseudo: pl.DataFrame, enc_a: Checkpoint,
                   enc_b: Checkpoint) -> dg.MaterializeResult:
        """LGCD trained on real + pseudo overlap users, early-stopped on valid NDCG@10."""
        return _fit_and_publish(context, store, stage, spec, sequences, pseudo, enc_a, enc_b)
    return lgcd_model


def build(cfg: DatasetConfig) -> list[dg.AssetsDefinition]:
    """Every LGCD model asset: the configured variants, then the evaluation's extra models.

    The extra ones are seed replicas and sweep points (models/evaluation/plan.py), trained by
    the same factory so that the evaluation stage only ranks.
    """
    return [_lgcd_asset(cfg, spec) for spec in cfg.lgcd_models()]

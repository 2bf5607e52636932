"""The one ``Definitions`` of this code location: assets, checks, resources, jobs, schedules, sensors.

The dataset pair comes from ``$LGCD_DATASET`` (default ``demo``); see README.md.
``build_definitions`` is also what tests call with their own config and storage.
"""

from pathlib import Path

import dagster as dg

from app.jobs import evaluate, full_rebuild, pseudo_refresh
from app.jobs import sweep as sweep_job
from app.recovery import release_dead_runs_sensor
from app.schedules import weekly_full_rebuild
from assets import (
    baselines,
    embeddings,
    encoders,
    evaluation,
    grounding,
    ingest,
    lgcd,
    llm,
    prepare,
    pseudo,
    raw,
    report,
    splits,
    sweep,
)
from pipeline import settings
from pipeline.config import DatasetConfig, load_dataset_config
from pipeline.executors import build_executor
from pipeline.io_managers import VersionedIOManager, VersionStore
from pipeline.resources import PipesLLMLauncher, SentenceTransformerEmbedder


def build_definitions(cfg: DatasetConfig, storage_root: str | Path | None = None,
                      executor: str | None = None) -> dg.Definitions:
    """Assemble the asset graph for one dataset pair, storing under ``storage_root``.

    ``executor`` overrides ``$LGCD_EXECUTOR`` (see pipeline/executors.py).
    """
    store = VersionStore(root=str(storage_root or settings.storage_root_default()))
    assets = [*raw.build(cfg), *ingest.build(cfg), *prepare.build(cfg), *splits.build(cfg),
              *embeddings.build(cfg), *encoders.build(cfg), *llm.build(cfg), *pseudo.build(cfg),
              *grounding.build(cfg), *lgcd.build(cfg), *evaluation.build(cfg), *baselines.build(cfg),
              *sweep.build(cfg), *report.build(cfg)]
    checks = [*prepare.build_checks(cfg), *splits.build_checks(cfg)]
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        resources={"store": store, "io_manager": VersionedIOManager(store=store),
                   "llm": PipesLLMLauncher.from_config(cfg.generation),
                   "text_embedder": SentenceTransformerEmbedder.from_config(cfg.embedding)},
        jobs=[full_rebuild, pseudo_refresh, evaluate, sweep_job],
        schedules=[weekly_full_rebuild],
        sensors=[release_dead_runs_sensor],
        executor=build_executor(executor, assets, __name__),
    )


defs = build_definitions(load_dataset_config(settings.dataset_config_path()))


def job_named(name: str) -> dg.JobDefinition:
    """A job of ``defs`` by name: the entry point other processes use to rebuild the job.

    The multiprocess executor re-imports the job in every step process, which needs a
    module-level function (``dg.build_reconstructable_job``); see ``app.cli demo``.
    """
    return defs.resolve_job_def(name)

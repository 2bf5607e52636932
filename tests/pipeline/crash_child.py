"""Materialize assets in a process of its own, so that tests/pipeline/test_crash_resume.py can SIGKILL it.

    python -m tests.pipeline.crash_child CONFIG STORAGE_ROOT DAGSTER_HOME KEY [KEY ...]

CONFIG is a dataset YAML file, or ``llm_lgcd`` for :func:`llm_lgcd_config`. The instance home
gets the project's ``pipeline/dagster.yaml`` and runs start by releasing killed runs (both as
``python -m pipeline.cli demo`` does), so the GPU pool slot a killed run still holds is part
of what the test exercises. The test drives the parent side with the same helpers, in process.
"""

import dataclasses
import shutil
import sys
from pathlib import Path

import dagster as dg

from models.encoder_training import EncoderTrainConfig
from models.lgcd_config import LGCDConfig
from models.lgcd_pipeline import LGCDStageConfig, VariantSpec
from pipeline.config import DatasetConfig, load_dataset_config
from pipeline.definitions import build_definitions
from pipeline.recovery import release_dead_runs
from tests.conftest import small_demo_config

LGCD_EPOCHS = 40  # early stopping off (patience = epochs): a window of many epochs to kill in


def llm_lgcd_config() -> DatasetConfig:
    """The small demo with 4 users per direction for the LLM (2 prompts a chunk) and a tiny LGCD.

    Sampling stays on (the demo's temperature), so a resumed generation only matches an
    uninterrupted one if each chunk's randomness does not depend on the chunks before it.
    """
    cfg = small_demo_config(n_reviews=8000, overlap_fraction=0.5)
    gen = dataclasses.replace(cfg.generation, backend="transformers", max_users_per_direction=4,
                              max_tokens=16, chunk_size=2)
    enc = EncoderTrainConfig(d=16, n_heads=2, n_layers=1, epochs=1, patience=1, device="cpu")
    model = LGCDConfig(d=16, T=10, batch_size=32, overlap_batch_size=8, epochs=LGCD_EPOCHS,
                       patience=LGCD_EPOCHS)
    lgcd = LGCDStageConfig(model=model, variants=(VariantSpec("full"),), device="cpu", threads=1,
                           valid_negatives=50)
    return dataclasses.replace(cfg, generation=gen, encoder=enc, lgcd=lgcd)


def load_config(name: str) -> DatasetConfig:
    return llm_lgcd_config() if name == "llm_lgcd" else load_dataset_config(Path(name))


def open_instance(home: Path) -> dg.DagsterInstance:
    """The persistent instance under ``home``, created with the project's dagster.yaml."""
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").is_file():
        shutil.copy(Path(__file__).parents[2] / "pipeline" / "dagster.yaml", home / "dagster.yaml")
    return dg.DagsterInstance.from_config(str(home))


def materialize(cfg: DatasetConfig, root: Path, instance: dg.DagsterInstance,
                selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    defs = build_definitions(cfg, root, executor="in_process")
    job = dg.define_asset_job("crash_test", selection=selection)
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("crash_test").execute_in_process(instance=instance, raise_on_error=False)


def main(argv: list[str]) -> int:
    config, root, home, *keys = argv
    with open_instance(Path(home)) as instance:
        release_dead_runs(instance)  # as `python -m pipeline.cli demo` does before every run
        result = materialize(load_config(config), Path(root), instance, dg.AssetSelection.assets(*keys))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

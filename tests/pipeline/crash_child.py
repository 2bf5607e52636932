"""Materialize assets in a process of its own, so that tests/pipeline/test_crash_resume.py can SIGKILL it.

    python -m tests.pipeline.crash_child CONFIG STORAGE_ROOT DAGSTER_HOME KEY [KEY ...]

CONFIG is a dataset YAML file. The instance home gets the project's ``pipeline/dagster.yaml``
and runs start by releasing killed runs (both as ``python -m app.cli demo`` does), so the
GPU pool slot a killed run still holds is part of what the test exercises. The test drives the
parent side with the same helpers (tests/conftest.py), in process.
"""

import sys
from pathlib import Path

import dagster as dg

from app.recovery import release_dead_runs
from pipeline.config import load_dataset_config
from tests.conftest import materialize, open_instance


def main(argv: list[str]) -> int:
    config, root, home, *keys = argv
    with open_instance(Path(home)) as instance:
        release_dead_runs(instance)  # as `python -m app.cli demo` does before every run
        result = materialize(load_dataset_config(Path(config)), Path(root), instance,
                             dg.AssetSelection.assets(*keys))
    return 0 if result.success else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

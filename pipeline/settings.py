"""Locations that a user overrides with environment variables (documented in README.md).

Defaults keep everything inside the project folder, git-ignored, so a fresh clone
works without any setup and two clones never share state.
"""

import os
import shutil
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent

ENV_STORAGE_ROOT = "LGCD_STORAGE_ROOT"
ENV_DATASET = "LGCD_DATASET"
ENV_DAGSTER_HOME = "DAGSTER_HOME"


def dataset_name() -> str:
    """Name of the dataset selected by ``$LGCD_DATASET`` (the YAML file's stem)."""
    return dataset_config_path().stem


def storage_root_default() -> str:
    """Versioned intermediates: ``$LGCD_STORAGE_ROOT`` or ``./.lgcd/<dataset>/storage``.

    One folder per dataset, so switching datasets never mixes their versions.
    """
    default = PROJECT_ROOT / ".lgcd" / dataset_name() / "storage"
    return os.environ.get(ENV_STORAGE_ROOT, str(default))


def dagster_home_default() -> Path:
    """Instance home: ``$DAGSTER_HOME`` or ``./.lgcd/<dataset>/dagster_home``."""
    default = PROJECT_ROOT / ".lgcd" / dataset_name() / "dagster_home"
    return Path(os.environ.get(ENV_DAGSTER_HOME, str(default)))


def dataset_config_path() -> Path:
    """Dataset pair to build: ``$LGCD_DATASET`` (a name in configs/ or a path), default demo."""
    value = os.environ.get(ENV_DATASET, "demo")
    path = Path(value)
    if path.suffix in {".yaml", ".yml"}:
        return path if path.is_absolute() else Path.cwd() / path
    return PROJECT_ROOT / "configs" / f"{value}.yaml"


def ensure_instance_home(home: Path) -> Path:
    """Create the Dagster instance folder ``home`` with the project's dagster.yaml if it has none.

    The project's file sets telemetry off and the GPU pool limit; an instance without it would
    run two GPU steps at once.
    """
    home.mkdir(parents=True, exist_ok=True)
    if not (home / "dagster.yaml").exists():
        shutil.copy(PROJECT_ROOT / "pipeline" / "dagster.yaml", home / "dagster.yaml")
    return home

"""Shared fixtures: a tiny demo config, a temporary storage root and Dagster instance."""

import dataclasses
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipeline import settings
from pipeline.config import DatasetConfig, load_dataset_config

SHARED_DATA = settings.PROJECT_ROOT.parent / "shared" / "data"
LLMCDSR_DIR = SHARED_DATA / "llmcdsr-food-kitchen"


def small_demo_config(**synthetic_overrides) -> DatasetConfig:
    """The demo pair at the generator's smallest scale, for fast end-to-end tests."""
    cfg = load_dataset_config(settings.PROJECT_ROOT / "configs" / "demo.yaml")
    synth = dataclasses.replace(cfg.synthetic, **{"n_reviews": 4000, **synthetic_overrides})
    return dataclasses.replace(cfg, synthetic=synth)


def write_demo_yaml(tmp_path: Path, drop: tuple[str, ...] = (), **over) -> Path:
    """configs/demo.yaml with top-level sections replaced (``over``) or removed (``drop``)."""
    base = yaml.safe_load((settings.PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    base.update(over)
    for key in drop:
        base.pop(key, None)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models: one intra-op thread avoids OpenMP spin contention on a busy 2-core box."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def demo_cfg() -> DatasetConfig:
    return small_demo_config()


@pytest.fixture
def storage_root(tmp_path: Path) -> Path:
    return tmp_path / "storage"


@pytest.fixture
def instance(tmp_path: Path):
    home = tmp_path / "dagster_home"
    home.mkdir()
    with dg.instance_for_test(temp_dir=str(home)) as inst:
        yield inst


def requires_llmcdsr():
    """Skip marker for tests that read the shared Food-Kitchen release."""
    return pytest.mark.skipif(
        not LLMCDSR_DIR.is_dir(), reason=f"LLMCDSR release not found at {LLMCDSR_DIR}"
    )

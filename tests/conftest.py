"""Shared fixtures: tiny demo configs, temporary storage roots and Dagster instances.

``tiny_pipeline`` runs the whole asset graph once per session (a few minutes of CPU); the
LGCD, crash-resume and determinism tests build on that one run instead of each making its own.
"""

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest
import yaml

from pipeline import settings
from pipeline.config import DatasetConfig, load_dataset_config

SHARED_DATA = settings.PROJECT_ROOT.parent / "shared" / "data"
LLMCDSR_DIR = SHARED_DATA / "llmcdsr-food-kitchen"


def pytest_configure(config) -> None:
    """Give SIGINT and SIGTERM their default meaning when the suite starts with them ignored.

    Why: a shell runs a background job (``make test &``, some CI launchers) with SIGINT
    ignored, and Dagster's in-process execution maps SIGTERM onto SIGINT's handler each
    time it restores that handler (``dagster/_utils/interrupts.py``). After the first
    in-process run the suite would then ignore SIGTERM too, and so would every process it
    starts: a multiprocessing pool could not be terminated (the storage-concurrency test
    hung there), nor a ``dagster dev`` server.
    """
    if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
        signal.signal(signal.SIGINT, signal.default_int_handler)
    if signal.getsignal(signal.SIGTERM) is signal.SIG_IGN:
        signal.signal(signal.SIGTERM, signal.SIG_DFL)


def pytest_collection_modifyitems(config, items) -> None:
    """Tests marked ``gpu`` need a CUDA device: without one they skip and say so.

    They are the device checks (tests/models/test_gpu.py); on a GPU box ``pytest -m gpu``
    runs just them.
    """
    import torch

    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device (marker gpu); this machine has none")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


# The small test corpora keep the generator's defaults and the old demo's split (80% of the
# overlapping users train), not configs/demo.yaml's report-sized choices: the tests need
# training users more than test users, and their sizes stay what they were measured at.
SMALL_CORPUS = {"zipf_exponent": 1.05, "taste_concentration": 0.25}
SMALL_SPLIT = {"train_fraction": 0.8, "window_days": 365, "executor": "in_process"}


def small_demo_config(**synthetic_overrides) -> DatasetConfig:
    """The demo pair at the generator's smallest scale, for fast end-to-end tests."""
    cfg = load_dataset_config(settings.PROJECT_ROOT / "configs" / "demo.yaml")
    synth = dataclasses.replace(cfg.synthetic, **{"n_reviews": 4000, **SMALL_CORPUS,
                                                  **synthetic_overrides})
    return dataclasses.replace(cfg, synthetic=synth, **SMALL_SPLIT)


def write_demo_yaml(tmp_path: Path, drop: tuple[str, ...] = (), **over) -> Path:
    """configs/demo.yaml with top-level sections replaced (``over``) or removed (``drop``)."""
    base = yaml.safe_load((settings.PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    base.update(over)
    for key in drop:
        base.pop(key, None)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(base))
    return path


# every stage at its smallest: ~100 overlap users (13 valid); the LLM runs for real (transformers
# backend, 4 users per direction, 2 prompts a chunk); 1-epoch encoders; a 4-epoch d=16 LGCD;
# evaluation on one seed against popularity, item-KNN and a 1-epoch SASRec
TINY = {
    **SMALL_SPLIT,
    "synthetic": {"n_reviews": 8000, "overlap_fraction": 0.5, "n_themes": 8, **SMALL_CORPUS},
    "generation": {"backend": "transformers", "max_users_per_direction": 4, "max_tokens": 16,
                   "chunk_size": 2},
    "encoder": {"d": 16, "n_heads": 2, "n_layers": 1, "epochs": 1, "patience": 1, "device": "cpu"},
    "lgcd": {"T": 10, "batch_size": 32, "overlap_batch_size": 8, "epochs": 4, "patience": 4,
             "variants": ["full"], "device": "cpu", "threads": 1, "valid_negatives": 50},
    "evaluation": {"seeds": [0], "baselines": ["popularity", "item_knn", "sasrec"],
                   "sequential": {"d": 16, "n_layers": 1, "epochs": 1, "patience": 1}},
}
# metadata that two identical runs may not share: where storage lives (``path``, and the
# ``cache`` entry of the LLM chunks, whose key holds the model folder's path), wall-clock
# figures (names ending in _s or _seconds, e.g. tokens_per_s, train_seconds) and the per-epoch
# and per-seed training tables (their metrics are also in the curves, but they hold a seconds
# column)
UNREPRODUCIBLE_NAMES = frozenset({"path", "cache", "epochs", "training"})


def reproducible(name: str) -> bool:
    return name not in UNREPRODUCIBLE_NAMES and not name.endswith(("_s", "_seconds"))


def write_tiny_yaml(folder: Path, seed: int = 0, **sections) -> Path:
    """configs/demo.yaml cut down to :data:`TINY`, with ``seed`` and keys added to ``sections``
    (mappings are merged into TINY's section, scalars such as ``executor`` set as given)."""
    folder.mkdir(parents=True, exist_ok=True)
    def merge(name: str):
        tiny, given = TINY.get(name), sections.get(name)
        if isinstance(tiny, dict) and (given is None or isinstance(given, dict)):
            return {**tiny, **(given or {})}
        return given if name in sections else tiny

    return write_demo_yaml(folder, seed=seed, **{name: merge(name) for name in {*TINY, *sections}})


def open_instance(home: Path) -> dg.DagsterInstance:
    """The persistent instance under ``home``, created with the project's dagster.yaml.

    Persistent rather than ``instance_for_test``: child processes (the crash tests) open it too.
    """
    return dg.DagsterInstance.from_config(str(settings.ensure_instance_home(home)))


def materialize(cfg: DatasetConfig, root: Path, instance: dg.DagsterInstance,
                selection: dg.AssetSelection) -> dg.ExecuteInProcessResult:
    """Run ``selection`` in process (failures are returned, not raised)."""
    from app.definitions import build_definitions

    defs = build_definitions(cfg, root, executor="in_process")
    job = dg.define_asset_job("test_selection", selection=selection)
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    return defs.resolve_job_def("test_selection").execute_in_process(instance=instance,
                                                                     raise_on_error=False)


def latest_materialization(instance: dg.DagsterInstance, key: str) -> dg.AssetMaterialization:
    """The latest materialization of ``key``; a clear failure when it has none."""
    event = instance.get_latest_materialization_event(dg.AssetKey(key))
    assert event is not None, f"{key} was never materialized"
    return event.asset_materialization


def materialization_count(instance: dg.DagsterInstance, key: str) -> int:
    """How many times ``key`` was materialized (up to 100)."""
    return len(instance.fetch_materializations(dg.AssetKey(key), limit=100).records)


def materialized(result: dg.ExecuteInProcessResult) -> dict[str, dict]:
    """asset -> {"data_version": ..., metadata name: value} of one run, if ``reproducible``."""
    facts = {}
    for event in result.get_asset_materialization_events():
        mat = event.step_materialization_data.materialization
        facts[mat.asset_key.to_user_string()] = {
            "data_version": mat.tags["dagster/data_version"],
            **{k: v.value for k, v in mat.metadata.items() if reproducible(k)}}
    return facts


@dataclass(frozen=True)
class PipelineRun:
    """One materialization of every asset: its YAML, storage root, instance home and facts."""

    config: Path
    root: Path
    home: Path
    facts: dict[str, dict]  # as recorded by the run itself, whatever later tests add

    def instance(self) -> dg.DagsterInstance:
        return open_instance(self.home)


def run_everything(config: Path, folder: Path) -> PipelineRun:
    """Materialize every asset of ``config`` into a fresh instance and root under ``folder``."""
    with open_instance(folder / "home") as instance:
        result = materialize(load_dataset_config(config), folder / "storage", instance,
                             dg.AssetSelection.all())
        assert result.success, [e.message for e in result.all_events if e.is_failure]
    return PipelineRun(config, folder / "storage", folder / "home", materialized(result))


@pytest.fixture(scope="session")
def tiny_pipeline(tmp_path_factory) -> PipelineRun:
    """The whole graph of :data:`TINY`, once per session.

    Tests that use it may materialize more (other variants, a killed and resumed stage), so
    each reads what it needs through ``facts`` or checks what holds whatever ran before it.
    """
    folder = tmp_path_factory.mktemp("tiny_pipeline")
    return run_everything(write_tiny_yaml(folder), folder)


@dataclass(frozen=True)
class DemoRun:
    """``app.cli demo`` on configs/demo.yaml, as README's first command runs it."""

    env: dict[str, str]  # LGCD_DATASET, LGCD_STORAGE_ROOT and DAGSTER_HOME of the run
    home: Path
    root: Path
    returncode: int
    stdout: str
    stderr: str


def run_cli(args: list[str], env: dict[str, str], offline: bool = False,
            **kw) -> subprocess.CompletedProcess:
    """``python -m app.cli ARGS``; ``offline`` in a network namespace with only loopback."""
    command = [sys.executable, "-m", "app.cli", *args]
    if offline:
        inner = " ".join(command)
        command = ["unshare", "-rn", "sh", "-c", f"ip link set lo up && exec {inner}"]
    return subprocess.run(command, cwd=settings.PROJECT_ROOT, env=env, capture_output=True,
                          text=True, **kw)


def stop_process_group(process: subprocess.Popen, timeout_s: float = 30) -> None:
    """SIGTERM a process started with ``start_new_session=True`` and its children, then SIGKILL.

    Servers the tests start (``dagster dev``, a celery worker) fork children of their own.
    """
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def can_isolate_network() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    return subprocess.run(["unshare", "-rn", "true"], capture_output=True).returncode == 0


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory) -> DemoRun:
    """The embedded demo at its real size, once per session (about 5 minutes on 2 cores).

    Offline where the machine can isolate the network. The CLI test checks the run and
    its results; the browser test serves the same instance, whose report is the one a new
    user sees first.
    """
    folder = tmp_path_factory.mktemp("demo_run")
    env = {**os.environ, "LGCD_DATASET": "demo", "LGCD_STORAGE_ROOT": str(folder / "storage"),
           "DAGSTER_HOME": str(folder / "home")}
    env.pop("LGCD_EXECUTOR", None)  # the dataset config's executor, as `make demo` runs it
    out = run_cli(["demo"], env, offline=can_isolate_network())
    return DemoRun(env, folder / "home", folder / "storage", out.returncode, out.stdout,
                   out.stderr)


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

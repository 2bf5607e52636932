"""Crash and resume with a real SIGKILL (reliability guarantee 1).

A child process (tests/pipeline/crash_child.py) materializes one stage through Dagster into a
persistent instance and storage root, upstream assets having been materialized in process (for
(b) and (c), the session's tiny run of the whole graph, ``tiny_pipeline`` in conftest). The
test watches from outside and kills the child and every process under it (the LLM worker) with
SIGKILL, as an OOM killer or a lost node would:

* (a) ingestion: while the raw files are read (the child holds one open, seen in /proc), once
  the first table is being staged (an entry appears in ``.staging``), and once the first of the
  three tables is being committed (its asset folder appears; the other two are not yet);
* (b) LLM generation: once the first chunk file of ``pseudo_generations`` exists;
* (c) LGCD training: once ``last.pt`` exists.

After each kill, every committed version folder still hashes to its name, and every version
the instance or a LATEST pointer names exists and is intact, so nothing partial can be loaded.
The rerun is a child process too, bounded by a timeout, so a lock or concurrency slot left
behind by the dead run fails the test instead of hanging it. It must complete, reuse the work
already done (``chunks_resumed``, ``resumed_from``) and publish the very same data version as
an uninterrupted run with the same seed. LGCD's validation metrics are compared with
METRIC_TOL: equal versions mean bit-identical weights, so the tolerance only absorbs float
formatting in metadata.
"""

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import dagster as dg
import psutil
import pytest

from models.data import synthetic
from pipeline import integrity, storage
from pipeline.config import load_dataset_config
from pipeline.settings import PROJECT_ROOT
from tests.conftest import materialization_count as count
from tests.conftest import materialize, open_instance, write_tiny_yaml

INGEST = ("interactions", "items", "quarantine")
INGEST_REVIEWS = 100_000  # reading takes long enough (about a second) to be caught in the middle
POLL_S = 0.002
KILL_POINT_TIMEOUT_S = 900  # generous: the machine may be busy; only a stuck child reaches it
RERUN_TIMEOUT_S = 900
METRIC_TOL = 1e-9
LGCD_EPOCHS = 40  # early stopping off (patience = epochs): a window of many epochs to kill in


def spawn(config: str | Path, root: Path, home: Path, keys, log: Path) -> subprocess.Popen:
    with log.open("ab") as out:
        return subprocess.Popen([sys.executable, "-m", "tests.pipeline.crash_child", str(config), str(root),
                                 str(home), *keys], cwd=PROJECT_ROOT, stdout=out, stderr=subprocess.STDOUT,
                                start_new_session=True)


def kill_tree(proc: subprocess.Popen) -> None:
    """SIGKILL the child and everything under it; stopped first so it cannot spawn meanwhile."""
    descendants = []
    with contextlib.suppress(psutil.NoSuchProcess):
        parent = psutil.Process(proc.pid)
        parent.suspend()
        descendants = parent.children(recursive=True)
        for victim in (parent, *descendants):
            with contextlib.suppress(psutil.NoSuchProcess):
                victim.send_signal(signal.SIGKILL)
    proc.wait(timeout=60)  # reaped here, not by psutil, so that Popen keeps the exit status
    psutil.wait_procs(descendants, timeout=60)


def tail(log: Path) -> str:
    return log.read_text(errors="replace")[-4000:] if log.exists() else ""


def kill_when(proc: subprocess.Popen, ready: Callable[[], bool], log: Path) -> None:
    """Poll ``ready`` and SIGKILL the child tree the moment it holds; fail if the child ends first."""
    deadline = time.monotonic() + KILL_POINT_TIMEOUT_S
    while not ready():
        if proc.poll() is not None:
            pytest.fail(f"the child exited ({proc.returncode}) before the kill point:\n{tail(log)}")
        if time.monotonic() > deadline:
            kill_tree(proc)
            pytest.fail(f"kill point not reached in {KILL_POINT_TIMEOUT_S} s:\n{tail(log)}")
        time.sleep(POLL_S)
    kill_tree(proc)
    assert proc.returncode == -signal.SIGKILL, f"the child ended on its own ({proc.returncode})"


def rerun(config: str | Path, root: Path, home: Path, keys, log: Path) -> None:
    proc = spawn(config, root, home, keys, log)
    try:
        code = proc.wait(timeout=RERUN_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        kill_tree(proc)
        pytest.fail(f"the rerun after the kill did not finish in {RERUN_TIMEOUT_S} s:\n{tail(log)}")
    assert code == 0, f"the rerun after the kill failed:\n{tail(log)}"


def holds_open(pid: int, path: Path) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    with contextlib.suppress(OSError):
        for fd in fds.iterdir():
            with contextlib.suppress(OSError):
                if os.readlink(fd) == str(path):
                    return True
    return False


def assert_nothing_partial(root: Path, instance: dg.DagsterInstance) -> None:
    """Every committed version hashes to its name; every version named anywhere is committed."""
    committed = set()
    for kind_file in root.rglob("KIND"):
        folder = kind_file.parent
        if folder.relative_to(root).parts[0] in (storage.STAGING, ".cache"):
            continue
        value = storage.read(folder)
        actual = (storage.checkpoint_hash(value) if isinstance(value, storage.Checkpoint)
                  else integrity.folder_hash(folder)[0])
        assert actual == folder.name, f"{folder} does not hold the content its name promises"
        committed.add(folder.resolve())
    for pointer in root.rglob(storage.LATEST):
        named = (pointer.parent / pointer.read_text().strip()).resolve()
        assert named in committed, f"{pointer} names a missing version"
    for key in instance.get_asset_keys():
        event = instance.get_latest_materialization_event(key)
        if event is not None:
            meta = event.asset_materialization.metadata
            recorded = Path(meta["path"].value).resolve()
            assert recorded in committed, f"{key.to_user_string()}: recorded version is missing"


def latest(instance: dg.DagsterInstance, key: str) -> dict:
    meta = instance.get_latest_materialization_event(dg.AssetKey(key)).asset_materialization.metadata
    return {name: entry.value for name, entry in meta.items()}


# ---------------------------------------------------------------- (a) ingestion


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    """(dataset YAML, versions of an uninterrupted ingest) for a 100k-review 2018-format corpus.

    Real-file format rather than ``synthetic``: the corpus is generated once, outside every
    storage root, and each test's rerun reads the very files the reference read.
    """
    tmp = tmp_path_factory.mktemp("crash_ingest")
    synthetic.generate(synthetic.SyntheticConfig(n_reviews=INGEST_REVIEWS, domains=("Food", "Kitchen")),
                       tmp / "raw")
    domains = {d: {"category": c, "reviews": str(tmp / "raw" / f"{c}.json.gz"),
                   "meta": str(tmp / "raw" / f"meta_{c}.json.gz")} for d, c in (("A", "Food"), ("B", "Kitchen"))}
    config = tmp / "pair.yaml"
    config.write_text(json.dumps({"name": "pair", "format": "amazon2018", "domains": domains,
                                  "window_days": None, "k_core": 5}))
    with open_instance(tmp / "home") as instance:
        selection = dg.AssetSelection.assets("raw_sources", *INGEST)
        assert materialize(load_dataset_config(config), tmp / "storage", instance, selection).success
        reference = {key: latest(instance, key)["version"] for key in INGEST}
    return config, Path(domains["B"]["reviews"]), reference


@pytest.mark.slow
@pytest.mark.parametrize("moment", ["reading", "staging", "committing"])
def test_sigkill_during_ingest_then_rerun_publishes_the_same_tables(pair, tmp_path, moment):
    config, kitchen_reviews, reference = pair
    root, home, log = tmp_path / "storage", tmp_path / "home", tmp_path / "child.log"
    with open_instance(home) as instance:
        assert materialize(load_dataset_config(config), root, instance,
                           dg.AssetSelection.assets("raw_sources")).success
    proc = spawn(config, root, home, INGEST, log)
    kill_when(proc, {"reading": lambda: holds_open(proc.pid, kitchen_reviews),
                     "staging": lambda: any((root / storage.STAGING).iterdir()),
                     "committing": lambda: (root / INGEST[0]).is_dir()}[moment], log)
    with open_instance(home) as instance:
        assert_nothing_partial(root, instance)
        if moment == "reading":
            assert all(count(instance, key) == 0 for key in INGEST)
    rerun(config, root, home, INGEST, log)
    with open_instance(home) as instance:
        assert {key: latest(instance, key)["version"] for key in INGEST} == reference
        assert_nothing_partial(root, instance)


# ---------------------------------------------------------------- (b), (c): LLM and training


@pytest.fixture(scope="module")
def upstream(tiny_pipeline, tmp_path_factory):
    """(storage root, instance home, YAML) of the session's tiny run, whose LGCD trains 40 epochs.

    Sampling stays on (the demo's temperature) and a chunk holds 2 prompts, so a resumed
    generation only matches the uninterrupted one if each chunk's randomness does not depend on
    the chunks before it. Only the lgcd section differs from the tiny run, so every upstream
    version is the one already materialized.
    """
    config = write_tiny_yaml(tmp_path_factory.mktemp("crash_llm_lgcd"),
                             lgcd={"epochs": LGCD_EPOCHS, "patience": LGCD_EPOCHS})
    return tiny_pipeline.root, tiny_pipeline.home, config


@pytest.mark.slow
def test_sigkill_during_generation_resumes_from_finished_chunks(upstream, tmp_path):
    root, home, config = upstream
    log = tmp_path / "child.log"
    with open_instance(home) as instance:
        reference = latest(instance, "pseudo_generations")
        published = count(instance, "pseudo_generations")
    total = reference["chunks_generated"]
    cache = root / ".cache" / "pseudo_generations"
    shutil.rmtree(cache)  # the uninterrupted run's chunks; the killed run starts from nothing

    def finished_chunks() -> list[Path]:
        return sorted(cache.glob("*/chunks/chunk-*.jsonl"))

    proc = spawn(config, root, home, ["pseudo_generations"], log)
    kill_when(proc, lambda: bool(finished_chunks()), log)
    done = len(finished_chunks())
    assert 1 <= done < total, f"killed after {done} of {total} chunks: not in the middle"
    with open_instance(home) as instance:
        assert_nothing_partial(root, instance)
        assert count(instance, "pseudo_generations") == published
    rerun(config, root, home, ["pseudo_generations"], log)
    with open_instance(home) as instance:
        meta = latest(instance, "pseudo_generations")
        assert_nothing_partial(root, instance)
    assert (meta["chunks_resumed"], meta["chunks_generated"]) == (done, total - done)
    assert meta["version"] == reference["version"]  # the same table as the uninterrupted run


@pytest.mark.slow
def test_sigkill_during_training_resumes_from_last_checkpoint(upstream, tmp_path):
    root, home, config = upstream
    log = tmp_path / "child.log"
    cfg = load_dataset_config(config)
    with open_instance(home) as instance:
        assert materialize(cfg, root, instance, dg.AssetSelection.assets("lgcd_model")).success
        reference = latest(instance, "lgcd_model")
        published = count(instance, "lgcd_model")
    assert reference["resumed_from"] == -1
    checkpoints = root / ".cache" / "lgcd"
    assert not list(checkpoints.glob("*/last.pt"))  # a published model leaves no resume point

    proc = spawn(config, root, home, ["lgcd_model"], log)
    kill_when(proc, lambda: any(checkpoints.glob("*/last.pt")), log)
    with open_instance(home) as instance:
        assert_nothing_partial(root, instance)
        assert count(instance, "lgcd_model") == published  # the killed run published nothing
    rerun(config, root, home, ["lgcd_model"], log)
    with open_instance(home) as instance:
        meta = latest(instance, "lgcd_model")
        assert_nothing_partial(root, instance)
    assert meta["resumed_from"] >= 1
    assert meta["epochs_run"] == reference["epochs_run"] == cfg.lgcd.model.epochs
    assert meta["best_epoch"] == reference["best_epoch"]
    for metric in ("val_hr10", "val_ndcg10"):
        assert meta[metric] == pytest.approx(reference[metric], abs=METRIC_TOL)
    assert meta["version"] == reference["version"]  # bit-identical weights and training record

"""The README's first command end to end, plus `where` and `gc`.

``pipeline.cli demo`` runs inside a fresh network namespace (``unshare -rn``) with
only loopback up: every model comes from local packages, and nothing at run time
may open a network connection. It runs under the multiprocess executor (one
process per step, the GPU pool serializing GPU steps), so the same run also proves
that the deployed executor materializes the whole graph; the in-process path is
what every other end-to-end test uses. The dataset is the tiny demo (tests/conftest.py
TINY) with the demo's own LLM backend (vLLM when .venv-llm has it): every asset of
the graph at a CI-sized cost. The full demo's scale is `make demo` (README).
"""

import os
import shutil
import subprocess
import sys

import dagster as dg
import pytest
import torch

from pipeline import storage
from pipeline.settings import PROJECT_ROOT
from tests.conftest import write_tiny_yaml


def _run(args, env, offline=False, **kw):
    command = [sys.executable, "-m", "pipeline.cli", *args]
    if offline:
        inner = " ".join(command)
        command = ["unshare", "-rn", "sh", "-c", f"ip link set lo up && exec {inner}"]
    return subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, **kw)


def _can_isolate_network() -> bool:
    if not shutil.which("unshare") or not shutil.which("ip"):
        return False
    probe = subprocess.run(["unshare", "-rn", "true"], capture_output=True)
    return probe.returncode == 0


@pytest.fixture
def env(tmp_path, monkeypatch):
    import os

    e = dict(os.environ)
    e.update(LGCD_STORAGE_ROOT=str(tmp_path / "storage"), DAGSTER_HOME=str(tmp_path / "home"))
    return e


@pytest.mark.slow
@pytest.mark.skipif(not _can_isolate_network(), reason="needs `unshare -rn` (util-linux) to block the network")
def test_demo_materializes_everything_offline_then_gc_keeps_only_latest(env, tmp_path):
    env["LGCD_DATASET"] = str(write_tiny_yaml(tmp_path / "config", generation={"backend": "auto"},
                                              executor="multiprocess"))
    out = _run(["demo"], env, offline=True)  # the executor comes from the dataset config
    assert out.returncode == 0, out.stderr[-3000:]
    assert "with the multiprocess executor" in out.stdout
    slots = 1 if torch.cuda.is_available() else os.cpu_count()  # no GPU: the pool shares cores
    assert f"Pool 'gpu': {slots} step(s) at once" in out.stdout
    assert "Materialized job 'full_rebuild'" in out.stdout and "raw_sources" in out.stdout
    assert "http://127.0.0.1:3000" in out.stdout
    assert (tmp_path / "home" / "dagster.yaml").is_file()
    with dg.DagsterInstance.from_config(str(tmp_path / "home")) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("pseudo_generations"))
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == slots
    has_vllm = any((PROJECT_ROOT / ".venv-llm").glob("lib/python*/site-packages/vllm/__init__.py"))
    assert event.asset_materialization.metadata["backend"].value == ("vllm" if has_vllm else "transformers")
    root = tmp_path / "storage"
    # An orphan version (as if left by an older run) is removed; referenced ones stay.
    orphan = storage.write(root, ["raw_sources"], storage.FileTree(PROJECT_ROOT / "configs"))
    again = _run(["demo", "--missing"], env)  # nothing left undone: no second run
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again.stderr[-2000:]
    where = _run(["where"], env)
    assert "raw_sources" in where.stdout
    gc = _run(["gc"], env)
    assert gc.returncode == 0, gc.stderr
    assert not orphan.exists()
    referenced = {line.split()[0]: line.split()[1] for line in where.stdout.splitlines()
                  if line.startswith("  ")}
    assert referenced and all(storage.read(p) is not None for p in referenced.values())
    manifest = storage.read(referenced["raw_sources"])  # the demo corpus it names is kept too
    assert all((root / path).is_file() for path in manifest["path"])


def test_bad_storage_root_is_one_clear_line(env, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env["LGCD_STORAGE_ROOT"] = str(blocker / "storage")
    out = _run(["gc"], env)
    assert out.returncode == 2
    assert "error: storage root" in out.stderr and str(blocker / "storage") in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_dataset_name_is_one_clear_line(env):
    env["LGCD_DATASET"] = "no_such_pair"
    out = _run(["where"], env)
    assert out.returncode == 2 and "no_such_pair.yaml does not exist" in out.stderr
    assert "Traceback" not in out.stderr

"""The README's first command end to end, plus `where` and `gc`.

``app.cli demo`` runs the embedded demo at its real size (configs/demo.yaml, once
per session: tests/conftest.py ``demo_run``) inside a fresh network namespace
(``unshare -rn``) with only loopback up: every model comes from local packages, and
nothing at run time may open a network connection. The demo's executor is multiprocess
(one process per step, the GPU pool serializing GPU steps), so the same run proves that
the deployed executor materializes the whole graph; the in-process path is what every
other end-to-end test uses. The LLM runs on the demo's own backend (vLLM when .venv-llm
has it). The run's report must show a result: LGCD significantly better than the
popularity and item-KNN floors on at least 600 cold-start test users.
"""

import os

import dagster as dg
import polars as pl
import pytest
import torch

from app.definitions import build_definitions
from assets import groups
from pipeline import storage
from pipeline.config import load_dataset_config
from pipeline.settings import PROJECT_ROOT
from tests.conftest import can_isolate_network, latest_materialization, run_cli


@pytest.fixture
def env(tmp_path, monkeypatch):
    e = dict(os.environ)
    e.update(LGCD_STORAGE_ROOT=str(tmp_path / "storage"), DAGSTER_HOME=str(tmp_path / "home"))
    return e


@pytest.mark.slow
@pytest.mark.skipif(not can_isolate_network(), reason="needs `unshare -rn` (util-linux) to block the network")
def test_demo_materializes_everything_offline_and_prints_stage_times(demo_run):
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    out = demo_run.stdout
    assert "with the multiprocess executor" in out  # the executor comes from the dataset config
    slots = 1 if torch.cuda.is_available() else os.cpu_count()  # no GPU: the pool shares cores
    assert f"Pool 'gpu': {slots} step(s) at once" in out
    assert "Materialized job 'full_rebuild'" in out and "raw_sources" in out
    assert "http://127.0.0.1:3000" in out
    table = out.split("Wall time per stage")[1].split("\n\n")[0].splitlines()[2:]
    stages = {line.split()[0] for line in table}
    assert {groups.RAW, groups.PREPARE, groups.ENCODERS, groups.PSEUDO, groups.LGCD,
            groups.EVALUATION, groups.BASELINES} <= stages, table
    assert (demo_run.home / "dagster.yaml").is_file()
    defs = build_definitions(load_dataset_config(PROJECT_ROOT / "configs" / "demo.yaml"),
                             demo_run.root)
    with dg.DagsterInstance.from_config(str(demo_run.home)) as instance:
        for key in defs.resolve_asset_graph().get_all_asset_keys():
            latest_materialization(instance, key.to_user_string())
        generations = latest_materialization(instance, "pseudo_generations")
        assert instance.event_log_storage.get_concurrency_info("gpu").slot_count == slots
    has_vllm = any((PROJECT_ROOT / ".venv-llm").glob("lib/python*/site-packages/vllm/__init__.py"))
    assert generations.metadata["backend"].value == ("vllm" if has_vllm else "transformers")
    meta = {k: v.value for k, v in generations.metadata.items()}
    assert meta["prompt_tokens"] > meta["prompt_tokens_cached"] >= 0 and meta["generated_tokens"] > 0
    assert meta["prompt_tokens_computed_per_s"] > 0 and meta["tokens_per_s"] > 0


@pytest.mark.slow
def test_demo_report_shows_lgcd_beating_the_floors_on_600_test_users(demo_run):
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(demo_run.home)) as instance:
        sequences = storage.read(latest_materialization(instance, "sequences").metadata["path"].value)
        report = latest_materialization(instance, "report").metadata
    held_out = dict(sequences.filter(pl.col("split") != "train")
                    .group_by("split", "target_domain").len()
                    .select(pl.concat_str("split", "target_domain"), "len").iter_rows())
    assert held_out["testA"] + held_out["testB"] >= 600, held_out
    assert held_out["validA"] + held_out["validB"] >= 600, held_out
    assert min(held_out.values()) >= 200, held_out  # both directions, both held-out splits
    tests = storage.read(report["path"].value)["significance"]
    pooled = {row["baseline"]: row for row in tests.filter(
        pl.col("target_domain") == "all").iter_rows(named=True)}
    for floor in ("popularity", "item_knn"):
        row = pooled[floor]
        assert row["users"] >= 600 and row["diff"] > 0 and row["p_value"] < 0.01, row
    verdict = report["table1"].value.rsplit("\n\n", 1)[1]
    assert verdict.startswith(f"**lgcd** on the {pooled['popularity']['users']} pooled test users")
    better = verdict.split("significantly better than ")[1].split(";")[0]
    assert "popularity (p=" in better and "item_knn (p=" in better
    assert "| popularity | both |" in report["significance"].value


@pytest.mark.slow
def test_missing_where_and_gc_keep_only_what_the_latest_run_uses(demo_run):
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    env, root = demo_run.env, demo_run.root
    # An orphan version (as if left by an older run) is removed; referenced ones stay.
    orphan = storage.write(root, ["raw_sources"], storage.FileTree(PROJECT_ROOT / "configs"))
    again = run_cli(["demo", "--missing"], env)  # nothing left undone: no second run
    assert again.returncode == 0 and "Nothing to do" in again.stdout, again.stderr[-2000:]
    where = run_cli(["where"], env)
    assert "raw_sources" in where.stdout
    # the cache entries the latest run's assets name, aged: kept because they are named
    named = [e for stage in ("embeddings", "pseudo_generations")
             for e in (root / storage.CACHE / stage).iterdir()]
    for path in [p for e in named for p in (e, *e.rglob("*"))]:
        os.utime(path, (0, 0))
    # a cache entry no asset names (an old embedding model), as old
    stale = root / storage.CACHE / "embeddings" / "retired-model"
    stale.mkdir(parents=True)
    (stale / "shard.parquet").write_bytes(b"\0" * 2_000_000)
    os.utime(stale / "shard.parquet", (0, 0))
    os.utime(stale, (0, 0))
    gc = run_cli(["gc"], env)
    assert gc.returncode == 0, gc.stderr
    assert not orphan.exists() and not stale.exists()
    assert "removed 1 cache entries (2.0 MB)" in gc.stdout, gc.stdout
    assert named and all(e.exists() for e in named)
    referenced = {line.split()[0]: line.split()[1] for line in where.stdout.splitlines()
                  if line.startswith("  ")}
    assert referenced and all(storage.read(p) is not None for p in referenced.values())
    manifest = storage.read(referenced["raw_sources"])  # the demo corpus it names is kept too
    assert all((root / path).is_file() for path in manifest["path"])


def test_bad_storage_root_is_one_clear_line(env, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    env["LGCD_STORAGE_ROOT"] = str(blocker / "storage")
    out = run_cli(["gc"], env)
    assert out.returncode == 2
    assert "error: storage root" in out.stderr and str(blocker / "storage") in out.stderr
    assert "Traceback" not in out.stderr


def test_bad_dataset_name_is_one_clear_line(env):
    env["LGCD_DATASET"] = "no_such_pair"
    out = run_cli(["where"], env)
    assert out.returncode == 2 and "no_such_pair.yaml does not exist" in out.stderr
    assert "Traceback" not in out.stderr

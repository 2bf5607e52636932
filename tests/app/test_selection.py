"""Selecting part of the graph as Dagster users type it: the `dagster` and `dg` CLIs, the
project's own `app.cli run --select`, and the expressions behind them.

``ingest`` and ``split`` are multi-assets (one read of the raw files, one split); they are
subsettable, so a selection that names one of their tables needs no siblings added by hand.
The slow tests run the real command-line tools in a subprocess on the TINY config, each in a
fresh storage root and Dagster instance, and compare what they publish with the in-process
run of the whole graph (``tiny_pipeline``).
"""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from app import selection
from app.definitions import build_definitions
from pipeline.config import load_dataset_config
from pipeline.settings import PROJECT_ROOT
from tests.conftest import open_instance, run_cli, write_tiny_yaml

BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("selection")
    cfg = load_dataset_config(write_tiny_yaml(folder))
    return build_definitions(cfg, folder / "storage", executor="in_process").resolve_job_def(
        "full_rebuild")


def names(keys) -> set[str]:
    return {k.to_user_string() for k in keys}


def test_legacy_and_current_syntax_select_the_same_upstream_graph(job):
    upstream = {"raw_sources", "interactions", "items", "filtered_interactions",
                "filtered_items", "sequences"}
    assert names(selection.resolve("*sequences", job)) == upstream
    assert names(selection.resolve("+key:sequences", job)) >= {"sequences", "filtered_items"}
    assert names(selection.resolve("items,sequences", job)) == {"items", "sequences"}
    assert names(selection.resolve("group:prepare", job)) == {
        "filtered_interactions", "filtered_items", "item_catalog", "sequences"}


@pytest.mark.parametrize("expr, message", [
    ("key:nosuch", "selects no asset of job 'full_rebuild'"),
    ("nosuch", "nosuch"),
    ("key:(", "is not a Dagster selection"),
    ("  ", "--select is empty"),
])
def test_a_bad_selection_is_one_error_naming_the_expression(job, expr, message):
    with pytest.raises(selection.SelectionError, match=message):
        selection.resolve(expr, job)


def _env(folder: Path) -> dict[str, str]:
    config = write_tiny_yaml(folder)
    (folder / "home").mkdir(parents=True, exist_ok=True)
    shutil.copy(PROJECT_ROOT / "pipeline" / "dagster.yaml", folder / "home" / "dagster.yaml")
    env = {**os.environ, "LGCD_DATASET": str(config), "LGCD_STORAGE_ROOT": str(folder / "storage"),
           "DAGSTER_HOME": str(folder / "home"), "PATH": f"{BIN}:{os.environ['PATH']}"}
    env.pop("LGCD_EXECUTOR", None)
    return env


def _run(command: list[str], env: dict[str, str]) -> subprocess.CompletedProcess:
    out = subprocess.run(command, cwd=PROJECT_ROOT, env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return out


def _version(home: Path, key: str) -> str | None:
    with open_instance(home) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        return None if event is None else event.asset_materialization.tags["dagster/data_version"]


@pytest.mark.slow
def test_dagster_cli_materializes_one_table_of_each_multi_asset(tmp_path, tiny_pipeline):
    """The README's failing case: `--select "*sequences"` used to raise DagsterInvalidSubsetError."""
    env = _env(tmp_path)
    _run([str(BIN / "dagster"), "asset", "materialize", "-m", "app.definitions",
          "--select", "*sequences"], env)
    home = tmp_path / "home"
    for key in ("interactions", "items", "sequences"):
        assert _version(home, key) == tiny_pipeline.facts[key]["data_version"], key
    # the siblings the selection did not name were computed but not published
    assert _version(home, "quarantine") is None
    assert _version(home, "item_catalog") is None
    _run([str(BIN / "dagster"), "asset", "materialize", "-m", "app.definitions",
          "--select", "item_catalog"], env)
    assert _version(home, "item_catalog") == tiny_pipeline.facts["item_catalog"]["data_version"]


@pytest.mark.slow
def test_dg_checks_the_definitions_and_launches_a_selection(tmp_path, tiny_pipeline):
    env = _env(tmp_path)
    checked = _run([str(BIN / "dg"), "check", "defs"], env)
    assert "All definitions loaded successfully" in checked.stdout + checked.stderr
    _run([str(BIN / "dg"), "launch", "--assets", "+key:filtered_items"], env)
    home = tmp_path / "home"
    assert _version(home, "filtered_items") == tiny_pipeline.facts["filtered_items"]["data_version"]
    assert _version(home, "sequences") is None


@pytest.mark.slow
def test_cli_run_select_materializes_only_the_selection(tmp_path, tiny_pipeline):
    env = _env(tmp_path)
    out = run_cli(["run", "--select", "raw_sources,items", "--executor", "in_process"], env,
                  timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    assert "Materializing 2 assets: items, raw_sources" in out.stdout
    home = tmp_path / "home"
    assert _version(home, "items") == tiny_pipeline.facts["items"]["data_version"]
    assert _version(home, "interactions") is None and _version(home, "quarantine") is None


def test_cli_run_refuses_a_bad_selection_or_job_in_one_line(tmp_path):
    env = _env(tmp_path)
    bad = run_cli(["run", "--select", "key:nosuch"], env, timeout=120)
    assert bad.returncode == 2
    assert bad.stderr.strip() == ("error: --select 'key:nosuch' selects no asset of job "
                                  "'full_rebuild'; `dagster asset list -m app.definitions` "
                                  "lists them")
    job = run_cli(["run", "--job", "nojob"], env, timeout=120)
    assert job.returncode == 2 and "choose one of ['evaluate', 'full_rebuild'" in job.stderr
    assert "Traceback" not in bad.stderr + job.stderr

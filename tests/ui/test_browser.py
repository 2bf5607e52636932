"""The Dagster UI in a real browser: graph, jobs, schedule and a materialized asset's metadata.

Starts `dagster dev` on 127.0.0.1 in its own process group (it ignores signals
sent to a background job otherwise; ../shared/NOTES.md), drives Debian's
Chromium headless through Playwright, saves screenshots under
tests/artifacts/ui/, and stops the server with SIGTERM to the group.
"""

import dataclasses
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.request

import dagster as dg
import pytest
import yaml

from pipeline.definitions import build_definitions
from pipeline.settings import PROJECT_ROOT, ensure_instance_home
from tests.conftest import small_demo_config

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts" / "ui"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]
UPSTREAM = "*sequence_encoder_a"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_http(url: str, timeout: float) -> None:
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(1)
    raise TimeoutError(f"{url} did not answer within {timeout} s")


@pytest.fixture
def materialized(tmp_path):
    """A small demo dataset config, materialized up to the domain-A encoder (a plot)."""
    base = yaml.safe_load((PROJECT_ROOT / "configs" / "demo.yaml").read_text())
    base["synthetic"]["n_reviews"] = 4000
    base["encoder"] = {"d": 16, "n_heads": 2, "n_layers": 1, "epochs": 2, "patience": 1}
    config = tmp_path / "ui_demo.yaml"
    config.write_text(yaml.safe_dump(base))
    home = ensure_instance_home(tmp_path / "home")
    env = {**os.environ, "DAGSTER_HOME": str(home), "LGCD_DATASET": str(config),
           "LGCD_STORAGE_ROOT": str(tmp_path / "storage")}
    cfg = dataclasses.replace(small_demo_config(), encoder=dataclasses.replace(
        small_demo_config().encoder, **base["encoder"]))
    defs = build_definitions(cfg, tmp_path / "storage", executor="in_process")
    selection = dg.AssetSelection.from_string(UPSTREAM).required_multi_asset_neighbors()
    job = dg.define_asset_job("ui_upstream", selection=selection)
    defs = dg.Definitions.merge(defs, dg.Definitions(jobs=[job]))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert defs.resolve_job_def("ui_upstream").execute_in_process(instance=instance).success
        mat = instance.get_latest_materialization_event(dg.AssetKey("sequences")).asset_materialization
        env["EXPECTED_SEQUENCE_ROWS"] = str(mat.metadata["dagster/row_count"].value)
    return env


@pytest.fixture
def server(materialized, request):
    port = _free_port()
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    log = (ARTIFACTS / "dagster_dev.log").open("w")
    proc = subprocess.Popen(
        [str(PROJECT_ROOT / ".venv" / "bin" / "dagster"), "dev", "-w", "workspace.yaml", "-h", "127.0.0.1",
         "-p", str(port)], cwd=PROJECT_ROOT, env=materialized, stdout=log, stderr=subprocess.STDOUT,
        start_new_session=True)
    try:
        _wait_http(f"http://127.0.0.1:{port}/server_info", 120)
        request.node.expected_rows = materialized["EXPECTED_SEQUENCE_ROWS"]
        yield f"http://127.0.0.1:{port}"
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        log.close()
    assert proc.returncode is not None


def _open(page, url: str) -> None:
    """Go to a page and dismiss the community pop-up the UI shows on a fresh instance."""
    page.goto(url)
    page.wait_for_load_state("networkidle")
    skip = page.get_by_text("Skip", exact=True)
    if skip.count():
        skip.first.click()


@pytest.mark.slow
@pytest.mark.skipif(CHROMIUM is None, reason="Chromium is not installed (.ci/run installs Debian's "
                    "chromium; this skip only happens where apt cannot install it)")
def test_ui_shows_graph_jobs_schedule_and_metadata(server, tmp_path, request):
    from playwright.sync_api import sync_playwright

    defs = build_definitions(small_demo_config(), tmp_path / "unused")
    asset_names = sorted(k.to_user_string() for k in defs.resolve_asset_graph().get_all_asset_keys())
    job_names = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
        page = browser.new_page(viewport={"width": 1600, "height": 6000})
        page.set_default_timeout(int(os.environ.get("UI_TIMEOUT_MS", "60000")))

        _open(page, f"{server}/assets")  # the catalog lists every asset (tall viewport: no virtual scroll)
        for name in asset_names:
            page.get_by_text(name, exact=True).first.wait_for()
        page.set_viewport_size({"width": 1600, "height": 1000})
        _open(page, f"{server}/locations/pipeline.definitions/asset-groups/pseudo")
        page.get_by_text("pseudo_generations", exact=True).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "asset_graph.png"))

        _open(page, f"{server}/jobs")
        for job in job_names:
            page.get_by_text(job, exact=True).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "jobs.png"))

        _open(page, f"{server}/automation")
        page.get_by_text("weekly_full_rebuild", exact=True).first.wait_for()
        page.get_by_text("release_dead_runs", exact=True).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "schedules.png"))

        _open(page, f"{server}/assets/sequences")
        page.get_by_text("Metadata", exact=True).first.wait_for()
        page.screenshot(path=str(ARTIFACTS / "sequences_metadata.png"), full_page=True)
        rows = request.node.expected_rows
        assert page.get_by_text(f"{int(rows):,}").count() + page.get_by_text(rows, exact=True).count() > 0

        _open(page, f"{server}/assets/sequence_encoder_a")
        row = page.locator("tr", has=page.get_by_text("training_curves", exact=True)).first
        row.get_by_text("[Show Markdown]").click()  # Markdown metadata opens in a dialog
        img = page.locator("img[src^='data:image/png']").first
        img.wait_for()
        assert img.evaluate("el => el.naturalWidth") > 100  # the plot really rendered
        img.scroll_into_view_if_needed()
        page.screenshot(path=str(ARTIFACTS / "encoder_plot.png"))
        browser.close()
    for shot in ("asset_graph", "jobs", "schedules", "sequences_metadata", "encoder_plot"):
        assert (ARTIFACTS / f"{shot}.png").stat().st_size > 10_000

"""The Dagster UI in a real browser: graph, jobs, schedule, metadata and the demo's Table 1.

Starts `dagster dev` on 127.0.0.1 in its own process group (it ignores signals
sent to a background job otherwise; ../shared/NOTES.md), drives Debian's
Chromium headless through Playwright, saves screenshots under
tests/artifacts/ui/, and stops the server with SIGTERM to the group.
"""

import os
import shutil
import socket
import subprocess
import time
import urllib.request

import dagster as dg
import pytest

from app.definitions import build_definitions
from pipeline.settings import PROJECT_ROOT
from tests.conftest import latest_materialization, small_demo_config, stop_process_group

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = PROJECT_ROOT / "tests" / "artifacts" / "ui"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
         "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic"]


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
def materialized(demo_run):
    """The demo run of this session (tests/conftest.py ``demo_run``): every asset, real size."""
    assert demo_run.returncode == 0, demo_run.stderr[-3000:]
    with dg.DagsterInstance.from_config(str(demo_run.home)) as instance:
        mat = latest_materialization(instance, "sequences")
    return {**demo_run.env, "EXPECTED_SEQUENCE_ROWS": str(mat.metadata["dagster/row_count"].value)}


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
        stop_process_group(proc)
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
def test_ui_shows_graph_jobs_schedule_metadata_and_a_nontrivial_table1(server, tmp_path, request):
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
        _open(page, f"{server}/locations/app.definitions/asset-groups/pseudo")
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

        _open(page, f"{server}/assets/report")  # Table 1, as a new user first sees the result
        row = page.locator("tr", has=page.get_by_text("table1", exact=True)).first
        row.get_by_text("[Show Markdown]").click()
        table = page.locator("[role=dialog] table").first
        table.wait_for()
        header = [c.inner_text().strip() for c in table.locator("thead th").all()]
        cells = [[c.inner_text().strip() for c in r.locator("td").all()]
                 for r in table.locator("tbody tr").all()]
        page.screenshot(path=str(ARTIFACTS / "report_table1.png"))
        browser.close()
    assert header[:3] == ["model", "Food HR@5", "Food HR@10"] and len(header) == 9, header
    models = [r for r in cells if not r[0].startswith("⚠")]  # floor warnings span one cell
    assert {"popularity", "item_knn", "lgcd"} <= {r[0] for r in models}, cells
    for j, column in enumerate(header[1:], start=1):
        means = {r[j].split("±")[0].strip() for r in models}
        assert len(means) >= 3, f"Table 1 column {column!r} holds only {sorted(means)}"
    for shot in ("asset_graph", "jobs", "schedules", "sequences_metadata", "encoder_plot",
                 "report_table1"):
        assert (ARTIFACTS / f"{shot}.png").stat().st_size > 10_000

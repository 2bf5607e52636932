"""Scale-out for real: the TINY graph on a Celery worker through a Redis broker.

Everything the README's scale-out section tells a user to run, run here: Debian's
``redis-server`` on a free loopback port (``.ci/run`` installs it, as it installs
Chromium), one ``dagster-celery worker``, and ``dagster job execute`` with
``LGCD_EXECUTOR=celery``. Every asset must end with the data version that an in-process
run of the same config, launched the same way, published, and every step must have run on
the worker. The baseline is a subprocess rather than the suite's own ``tiny_pipeline``:
float results depend on the torch thread count, and a step in a fresh process (a worker's
or the CLI's) gets the same count in both runs.
"""

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from pipeline.settings import PROJECT_ROOT
from tests.conftest import open_instance, stop_process_group, write_tiny_yaml

BIN = Path(sys.executable).parent
REDIS = shutil.which("redis-server")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(predicate, what: str, timeout_s: float = 60.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def execute(env: dict[str, str], worker_log: Path | None = None) -> None:
    """``dagster job execute`` of the whole graph, as the README shows it."""
    run = subprocess.run([str(BIN / "dagster"), "job", "execute", "-m", "app.definitions",
                          "-j", "full_rebuild"], cwd=PROJECT_ROOT, env=env, capture_output=True,
                         text=True, timeout=900)
    worker = worker_log.read_text()[-3000:] if worker_log else ""
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-3000:] + worker


def data_versions(home: Path) -> dict[str, str]:
    """The latest data version of every materialized asset of an instance."""
    with open_instance(home) as instance:
        out = {}
        for key in instance.get_asset_keys():
            event = instance.get_latest_materialization_event(key)
            if event is not None:
                out[key.to_user_string()] = event.asset_materialization.tags["dagster/data_version"]
        return out


@pytest.mark.slow
@pytest.mark.skipif(REDIS is None, reason="redis-server is not installed; .ci/run installs "
                    "Debian's redis-server package (apt-get install redis-server)")
def test_tiny_graph_on_a_celery_worker_matches_the_in_process_run(tmp_path):
    import redis

    port = free_port()
    broker, backend = f"redis://127.0.0.1:{port}/0", f"redis://127.0.0.1:{port}/1"
    server = subprocess.Popen([REDIS, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
                               "--appendonly", "no"], stdout=subprocess.DEVNULL,
                              start_new_session=True)
    worker = None
    try:
        client = redis.Redis(host="127.0.0.1", port=port)

        def answers() -> bool:
            try:
                return bool(client.ping())
            except redis.ConnectionError:
                return False

        wait_for(answers, "redis-server to answer PING")
        config = write_tiny_yaml(tmp_path)
        worker_yaml = tmp_path / "celery.yaml"
        worker_yaml.write_text(f"execution:\n  config:\n    broker: {broker}\n"
                               f"    backend: {backend}\n")
        env = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "LGCD_DATASET": str(config),
               "LGCD_CELERY_BROKER": broker, "LGCD_CELERY_BACKEND": backend}
        homes = {}
        for executor in ("in_process", "celery"):
            homes[executor] = tmp_path / executor / "home"
            homes[executor].mkdir(parents=True)
            shutil.copy(PROJECT_ROOT / "pipeline" / "dagster.yaml", homes[executor])
        env_of = {ex: {**env, "LGCD_EXECUTOR": ex, "DAGSTER_HOME": str(home),
                       "LGCD_STORAGE_ROOT": str(home.parent / "storage")}
                  for ex, home in homes.items()}
        execute(env_of["in_process"])
        log = tmp_path / "worker.log"
        with log.open("w") as out:
            worker = subprocess.Popen(
                [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app",
                 "-y", str(worker_yaml), "-n", "lgcd-test"], cwd=PROJECT_ROOT,
                env=env_of["celery"],
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        wait_for(lambda: "ready." in log.read_text(), "the celery worker to be ready")
        execute(env_of["celery"], log)
    finally:
        if worker is not None:
            stop_process_group(worker)
        stop_process_group(server)

    expected, versions = (data_versions(homes[ex]) for ex in ("in_process", "celery"))
    assert len(expected) >= 20 and versions == expected
    ran_on_worker = log.read_text().count("Task execute_plan[")
    assert ran_on_worker >= len(expected) // 2, ran_on_worker  # multi-assets and checks share steps

"""A run killed inside a GPU-pool step must not block every later GPU step (app/recovery.py).

Why: Dagster frees a pool slot when the step ends, which a SIGKILLed process never does; with
the project's pool limit of one, the next GPU step of any run would wait forever (seen in
tests/pipeline/test_crash_resume.py). A toy ``pool="gpu"`` asset that sleeps is materialized
in a child process against an instance with the project's dagster.yaml, then killed; the
``release_dead_runs`` sensor (what frees runs launched from the UI) gives the slot back.
"""

import multiprocessing as mp
import time
from pathlib import Path

import dagster as dg

from app.recovery import release_dead_runs, release_dead_runs_sensor
from pipeline.settings import ensure_instance_home


def _gpu_asset(marker: Path | None):
    @dg.asset(pool="gpu", name="gpu_step")
    def gpu_step() -> int:
        if marker is not None:
            marker.touch()
            time.sleep(300)  # killed long before this ends
        return 1

    return gpu_step


def _run_forever(home: str, marker: str) -> None:
    with dg.DagsterInstance.from_config(home) as instance:
        dg.materialize([_gpu_asset(Path(marker))], instance=instance)


def _claimed(instance) -> int:
    return len(instance.event_log_storage.get_concurrency_info("gpu").claimed_slots)


def test_a_killed_run_gives_back_its_gpu_slot_and_a_live_one_keeps_it(tmp_path):
    home, marker = tmp_path / "home", tmp_path / "started"
    ensure_instance_home(home)
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the SQLite schema once, as the CLI does before any run
    child = mp.get_context("spawn").Process(target=_run_forever, args=(str(home), str(marker)))
    child.start()
    try:
        deadline = time.monotonic() + 120
        while not marker.exists():
            assert child.is_alive() and time.monotonic() < deadline, "the child never reached the GPU step"
            time.sleep(0.05)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert _claimed(instance) == 1
            assert release_dead_runs(instance) == []  # alive: its slot is left alone
            assert _claimed(instance) == 1
    finally:
        child.kill()
        child.join()
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        assert _claimed(instance) == 1 and run.status == dg.DagsterRunStatus.STARTED  # what the kill leaves
        skip = release_dead_runs_sensor(dg.build_sensor_context(instance=instance))  # the daemon's tick
        assert isinstance(skip, dg.SkipReason) and run.run_id in skip.skip_message
        assert _claimed(instance) == 0
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        assert dg.materialize([_gpu_asset(None)], instance=instance).success  # no longer blocked
        assert release_dead_runs(instance) == []

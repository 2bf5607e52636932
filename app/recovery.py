"""Free the pool slots of runs that were killed, so that a rerun is not blocked by them.

Dagster frees a step's ``pool`` slot when the step ends. A run process killed with SIGKILL
(the OOM killer, ``kill -9``, a lost machine) never ends its steps: the run stays STARTED and
keeps the ``gpu`` slot (``pipeline/dagster.yaml`` allows one), so every later GPU step waits
"blocked by limit for pool gpu" forever. Dagster's run monitoring cannot tell that a run
worker of the DefaultRunLauncher died. On a local (SQLite) instance every run process lives on
this machine, so a run that holds slots while none of its processes is alive is marked failed
and its slots are freed: before every CLI run, and every minute by the ``release_dead_runs``
sensor for runs launched from the UI (the daemon of ``dagster dev`` evaluates it). Found by
tests/pipeline/test_crash_resume.py.
"""

import dagster as dg
import psutil
from dagster import DagsterInstance
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage


def _processes(instance: DagsterInstance, run_id: str) -> dict[int, float]:
    """Pid -> time of its first event: every process that worked on the run."""
    seen: dict[int, float] = {}
    for entry in instance.all_logs(run_id):
        pid = entry.dagster_event.pid if entry.dagster_event else None
        if pid is not None and pid not in seen:
            seen[pid] = entry.timestamp
    return seen


def _alive(pid: int, seen_at: float) -> bool:
    try:
        proc = psutil.Process(pid)
        # a process started after the run saw this pid merely reuses the number
        return proc.status() != psutil.STATUS_ZOMBIE and proc.create_time() <= seen_at + 1.0
    except psutil.NoSuchProcess:
        return False


def release_dead_runs(instance: DagsterInstance) -> list[str]:
    """Mark failed, and free the slots of, every run holding pool slots with no live process.

    Returns the ids of the runs released. Does nothing on a shared database (Postgres), whose
    runs may live on other machines; there Dagster's run monitoring is the tool.
    """
    storage = instance.event_log_storage
    if not isinstance(storage, SqliteEventLogStorage):
        return []
    released = []
    for run_id in sorted(storage.get_concurrency_run_ids()):
        run = instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            processes = _processes(instance, run_id)
            if not processes or any(_alive(pid, at) for pid, at in processes.items()):
                continue  # still running (or just starting)
            instance.report_run_failed(run, "the run's processes are gone (killed?); marked failed "
                                            "so that its pool slots are freed for a rerun")
        storage.free_concurrency_slots_for_run(run_id)
        released.append(run_id)
    return released


@dg.sensor(name="release_dead_runs", minimum_interval_seconds=60,
           default_status=dg.DefaultSensorStatus.RUNNING,
           description="Frees the pool slots of runs whose processes were killed (app/recovery.py); "
                       "launches nothing.")
def release_dead_runs_sensor(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    released = release_dead_runs(context.instance)
    if released:
        context.log.warning(f"marked failed and freed the pool slots of killed runs: {released}")
    return dg.SkipReason(f"released killed runs {released}" if released else "no killed run holds a slot")

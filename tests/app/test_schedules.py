"""The weekly rebuild: stopped on a fresh instance, cron from $LGCD_REBUILD_CRON."""

import importlib

import dagster as dg

from app import schedules


def test_the_rebuild_is_stopped_by_default_and_runs_the_full_rebuild():
    schedule = schedules.weekly_full_rebuild
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "full_rebuild"


def test_the_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv(schedules.ENV_CRON, raising=False)
    assert importlib.reload(schedules).weekly_full_rebuild.cron_schedule == "0 3 * * 0"  # Sundays 03:00
    monkeypatch.setenv(schedules.ENV_CRON, "30 1 * * *")
    assert importlib.reload(schedules).weekly_full_rebuild.cron_schedule == "30 1 * * *"
    monkeypatch.undo()  # the environment the suite started with, and the schedule built from it
    importlib.reload(schedules)

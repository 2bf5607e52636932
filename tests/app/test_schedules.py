"""The weekly rebuild: stopped on a fresh instance, cron from $LGCD_REBUILD_CRON."""

import importlib

import dagster as dg

from app import schedules


def test_the_rebuild_is_stopped_by_default_and_runs_the_full_rebuild():
    schedule = schedules.weekly_full_rebuild
    assert schedule.default_status == dg.DefaultScheduleStatus.STOPPED
    assert schedule.job_name == "full_rebuild"


def test_the_cron_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(schedules.ENV_CRON, "30 1 * * *")
    try:
        assert importlib.reload(schedules).weekly_full_rebuild.cron_schedule == "30 1 * * *"
    finally:
        monkeypatch.delenv(schedules.ENV_CRON)
        assert importlib.reload(schedules).weekly_full_rebuild.cron_schedule == "0 3 * * 0"

"""Schedules. Stopped by default so a fresh instance does nothing on its own."""

import os

import dagster as dg

from app.jobs import full_rebuild

ENV_CRON = "LGCD_REBUILD_CRON"

weekly_full_rebuild = dg.ScheduleDefinition(
    name="weekly_full_rebuild",
    job=full_rebuild,
    cron_schedule=os.environ.get(ENV_CRON, "0 3 * * 0"),  # Sundays 03:00
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekly full rebuild; turn it on in the UI (Automation) or with "
    "`dagster schedule start weekly_full_rebuild`.",
)

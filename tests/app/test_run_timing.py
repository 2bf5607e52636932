"""Per-stage wall times read back from a real Dagster run's event log."""

import time

import dagster as dg

from app.run_timing import StageTime, format_stage_times, stage_times


@dg.asset(group_name="first")
def slow_a() -> int:
    time.sleep(0.2)
    return 1


@dg.asset(group_name="first")
def quick_b(slow_a: int) -> int:
    return slow_a + 1


@dg.asset(group_name="second")
def after_c(quick_b: int) -> int:
    time.sleep(0.1)
    return quick_b + 1


def test_stage_times_group_steps_by_asset_group_in_start_order():
    defs = dg.Definitions(assets=[slow_a, quick_b, after_c])
    graph = defs.resolve_asset_graph()
    with dg.DagsterInstance.ephemeral() as instance:
        result = dg.materialize([slow_a, quick_b, after_c], instance=instance)
        times = stage_times(instance.all_logs(result.run_id),
                            lambda key: graph.get(key).group_name)
    assert [t.stage for t in times] == ["first", "second"]
    first, second = times
    assert first.steps == 2 and second.steps == 1
    assert first.busy_s >= 0.2 and second.busy_s >= 0.1
    assert first.wall_s >= first.busy_s - 1e-6  # sequential steps: the span covers both
    assert second.first_start >= first.last_end - 1e-6


def test_format_stage_times_offsets_from_the_first_start():
    table = format_stage_times([StageTime("raw", 100.0, 130.0, 30.0, 2),
                                StageTime("lgcd", 130.0, 190.0, 100.0, 3)])
    lines = table.splitlines()
    assert lines[0].split() == ["stage", "from", "to", "wall", "busy", "steps"]
    assert lines[1].split() == ["raw", "0s", "30s", "30s", "30s", "2"]
    assert lines[2].split() == ["lgcd", "30s", "90s", "60s", "100s", "3"]
    assert format_stage_times([]) == "no step finished"

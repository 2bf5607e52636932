"""Wall time per pipeline stage of a finished run, read back from Dagster's event log.

Why: "where did the 10 minutes go" is the first question after a slow run, and the UI's
Gantt chart answers it one step at a time. The CLI prints one line per stage (asset
group) instead: the wall span from its first step's start to its last step's end, the
summed step time (larger than the span where steps ran side by side) and the step count.
"""

from dataclasses import dataclass


@dataclass(frozen=True)
class StageTime:
    stage: str  # asset group name
    first_start: float  # unix seconds
    last_end: float
    busy_s: float  # sum over the stage's steps of end - start
    steps: int

    @property
    def wall_s(self) -> float:
        return self.last_end - self.first_start


def step_spans(events) -> dict[str, tuple[float, float]]:
    """Map each step that started and finished (success or failure) to its (start, end)."""
    import dagster as dg

    start: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for event in events:
        dagster_event = event.dagster_event
        if dagster_event is None or not event.step_key:
            continue
        kind = dagster_event.event_type
        if kind == dg.DagsterEventType.STEP_START:
            start[event.step_key] = event.timestamp
        elif kind in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE) and (
                event.step_key in start):
            spans[event.step_key] = (start[event.step_key], event.timestamp)
    return spans


def step_groups(events, group_of_asset) -> dict[str, str]:
    """Map each step key to the group of the first asset it materialized (``group_of_asset(key)``)."""
    out: dict[str, str] = {}
    for event in events:
        dagster_event = event.dagster_event
        if dagster_event is None or not event.step_key or event.step_key in out:
            continue
        if dagster_event.is_step_materialization:
            out[event.step_key] = group_of_asset(dagster_event.asset_key)
    return out


def stage_times(events, group_of_asset) -> list[StageTime]:
    """Per stage, in the order the stages started."""
    spans = step_spans(events)
    groups = step_groups(events, group_of_asset)
    by_stage: dict[str, list[tuple[float, float]]] = {}
    for step, span in spans.items():
        by_stage.setdefault(groups.get(step, "checks and other steps"), []).append(span)
    out = [StageTime(stage, min(s for s, _ in v), max(e for _, e in v),
                     sum(e - s for s, e in v), len(v)) for stage, v in by_stage.items()]
    return sorted(out, key=lambda t: t.first_start)


def format_stage_times(times: list[StageTime]) -> str:
    """A fixed-width table; offsets are from the first stage's start."""
    if not times:
        return "no step finished"
    origin = times[0].first_start
    lines = [f"{'stage':<24}{'from':>8}{'to':>8}{'wall':>8}{'busy':>8}{'steps':>7}"]
    for t in times:
        lines.append(f"{t.stage:<24}{t.first_start - origin:>7.0f}s{t.last_end - origin:>7.0f}s"
                     f"{t.wall_s:>7.0f}s{t.busy_s:>7.0f}s{t.steps:>7d}")
    return "\n".join(lines)

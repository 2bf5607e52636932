"""Asset selections as Dagster users type them, resolved against one job's asset graph.

Why a module of its own: the CLI's ``run --select`` must accept what ``dagster asset
materialize --select`` and the UI accept, the legacy syntax (``*sequences``,
``sequences+``, ``items,sequences``) and the current one (``+key:sequences``,
``group:prepare``, ``key:ranks_* and not key:ranks_lgcd``), and turn a mistake into one
line that names the expression and what is wrong, not a Dagster traceback.
"""

import dagster as dg


class SelectionError(ValueError):
    """An expression that selects nothing, or names an asset the job does not have."""


def parse(expr: str) -> dg.AssetSelection:
    """The ``AssetSelection`` of ``expr``: current syntax first, then comma-separated keys."""
    text = expr.strip()
    if not text:
        raise SelectionError("--select is empty; give an asset key or a Dagster selection "
                             "expression such as '*sequences' or 'group:prepare'")
    try:
        return dg.AssetSelection.from_string(text)
    except dg.DagsterError as first:
        if "," not in text:
            raise SelectionError(f"--select {expr!r} is not a Dagster selection: {first}") from first
        return dg.AssetSelection.from_coercible([part.strip() for part in text.split(",")])


def resolve(expr: str, job: dg.JobDefinition) -> list[dg.AssetKey]:
    """Keys of ``job``'s assets that ``expr`` selects, sorted; an empty result is an error."""
    graph = job.asset_layer.asset_graph
    selection = parse(expr)
    try:
        keys = selection.resolve(graph)
    except dg.DagsterError as exc:
        raise SelectionError(f"--select {expr!r} in job '{job.name}': {exc}") from exc
    keys = sorted(k for k in keys if job.asset_layer.has(k))
    if not keys:
        raise SelectionError(f"--select {expr!r} selects no asset of job '{job.name}'; "
                             "`dagster asset list -m app.definitions` lists them")
    return keys

"""Command line: run the whole pipeline, show where results are, collect garbage.

    python -m app.cli demo         # materialize every asset, print results
    python -m app.cli demo --executor multiprocess   # one process per step (default: the
                                        # dataset config's `executor`, in_process for the demo)
    python -m app.cli demo --missing   # only assets never materialized (finish a stopped run)
    python -m app.cli run --select '*sequences'      # part of the graph: any asset key or
                                        # Dagster selection expression (app/selection.py)
    python -m app.cli run --job pseudo_refresh       # one of the jobs in app/jobs.py
    python -m app.cli where        # latest version folder of every asset
    python -m app.cli verify [--asset KEY]  # rehash stored versions, list the bad ones
    python -m app.cli gc [--dry-run]  # delete versions no latest materialization uses

``demo`` is ``run`` with the whole ``full_rebuild`` job of the configured dataset.

All commands use ``$DAGSTER_HOME`` (default ``.lgcd/<dataset>/dagster_home``),
so runs made here show up in the Dagster UI started by ``make ui``.
"""

import argparse
import os
import sys
import time
from pathlib import Path

from pipeline import settings


def prepare_instance_home() -> Path:
    """Create ``$DAGSTER_HOME`` with the project's dagster.yaml if it has none."""
    home = settings.dagster_home_default()
    os.environ[settings.ENV_DAGSTER_HOME] = str(home)
    return settings.ensure_instance_home(home)


def _latest_paths(defs, instance) -> dict[str, tuple[Path, dict]]:
    """Asset key -> (version folder, metadata) of its latest materialization."""
    import dagster as dg

    out = {}
    for key in sorted(defs.resolve_asset_graph().get_all_asset_keys(), key=lambda k: k.to_user_string()):
        records = instance.fetch_materializations(dg.AssetRecordsFilter(asset_key=key), limit=1).records
        if records and records[0].asset_materialization:
            meta = records[0].asset_materialization.metadata
            if "path" in meta:
                out[key.to_user_string()] = (Path(meta["path"].value), meta)
    return out


def referenced_paths(defs, instance, root: Path) -> set[Path]:
    """Every version folder that a latest materialization (per asset and partition) points to.

    Also the folders such a version reads (its ``needs`` metadata, relative to ``root``): the
    demo corpus that the raw_sources manifest names; and the ``.cache`` entry its work lives
    in (its ``cache`` metadata): the embedding cache of the current model, the LLM chunks of
    the current prompts.
    """
    import dagster as dg

    from pipeline.io_managers import CACHE, NEEDS

    paths: set[Path] = set()
    for key in defs.resolve_asset_graph().get_all_asset_keys():
        partitions = instance.get_materialized_partitions(key) or [None]
        for partition in partitions:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(asset_key=key, asset_partitions=[partition] if partition else None),
                limit=1,
            ).records
            for record in records:
                meta = record.asset_materialization.metadata if record.asset_materialization else {}
                if "path" in meta:
                    paths.add(Path(meta["path"].value))
                paths.update(root / rel for rel in (meta[NEEDS].value if NEEDS in meta else []))
                if CACHE in meta:
                    paths.add(root / meta[CACHE].value)
    return paths


def missing_assets(job, instance) -> list:
    """Asset keys of ``job`` that have no materialization yet (what a stopped run left undone)."""
    return [key for key in sorted(job.asset_layer.asset_graph.get_all_asset_keys())
            if job.asset_layer.has(key) and instance.get_latest_materialization_event(key) is None]


def _execute(job: str, executor: str, instance, selection: list | None = None):
    """Run ``job`` (or its ``selection``) in this process, or one process per step (as deployed)."""
    import dagster as dg

    from app.definitions import defs

    if executor == "in_process":
        return defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                            asset_selection=selection)
    recon = dg.build_reconstructable_job("app.definitions", "job_named", (job,))
    return dg.execute_job(recon, instance=instance, raise_on_error=False, asset_selection=selection)


def cmd_run(args: argparse.Namespace) -> int:
    """Materialize a job, or the part of it that ``--select`` / ``--missing`` pick."""
    from pipeline.config import load_dataset_config

    executor = args.executor or load_dataset_config(settings.dataset_config_path()).executor
    # step processes rebuild the definitions from the environment, so they must agree
    os.environ["LGCD_EXECUTOR"] = executor
    import dagster as dg

    from app import selection as asset_selection
    from app.definitions import defs
    from app.recovery import release_dead_runs
    from pipeline.executors import GPU_POOL, gpu_pool_slots

    jobs = sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__"))
    if args.job not in jobs:
        raise asset_selection.SelectionError(f"--job {args.job!r} is not a job of this code "
                                             f"location; choose one of {jobs}")
    job = defs.resolve_job_def(args.job)
    home = prepare_instance_home()
    started = time.time()
    with dg.DagsterInstance.get() as instance:
        for run_id in release_dead_runs(instance):
            print(f"run {run_id} was killed: marked failed, its pool slots freed", file=sys.stderr)
        selection = None
        if getattr(args, "select", None):
            selection = asset_selection.resolve(args.select, job)
        if args.missing:
            missing = set(missing_assets(job, instance))
            selection = sorted(missing if selection is None else missing & set(selection))
            if not selection:
                print(f"Nothing to do: every selected asset of '{args.job}' is materialized.")
                return 0
        if selection is not None:
            print(f"Materializing {len(selection)} assets: "
                  + ", ".join(k.to_user_string() for k in selection))
        if executor == "multiprocess":
            slots = gpu_pool_slots()
            instance.event_log_storage.set_concurrency_slots(GPU_POOL, slots)
            print(f"Pool '{GPU_POOL}': {slots} step(s) at once on this machine.")
        print(f"Running job '{args.job}' with the {executor} executor.")
        result = _execute(args.job, executor, instance, selection)
        elapsed = time.time() - started
        _print_stage_times(defs, instance, result.run_id)
        if not result.success:
            for event in result.all_events:
                if event.is_step_failure:
                    print(f"FAILED {event.step_key}: {event.step_failure_data.error.message.strip()}",
                          file=sys.stderr)
            return 1
        print(f"\nMaterialized job '{args.job}' in {elapsed:.0f} s (dataset: {settings.dataset_name()}).")
        _print_where(defs, instance)
    print(f"\nDagster instance: {home}")
    print("Open the UI:  make ui   then browse http://127.0.0.1:3000")
    return 0


def _print_stage_times(defs, instance, run_id: str) -> None:
    from app.run_timing import format_stage_times, stage_times

    graph = defs.resolve_asset_graph()
    times = stage_times(instance.all_logs(run_id), lambda key: graph.get(key).group_name)
    print(f"\nWall time per stage (run {run_id}):\n{format_stage_times(times)}")


def _print_where(defs, instance) -> None:
    print(f"Storage root: {settings.storage_root_default()}")
    for name, (path, meta) in _latest_paths(defs, instance).items():
        rows = meta.get("dagster/row_count")
        extra = f"  rows={rows.value}" if rows is not None else ""
        print(f"  {name:<28} {path}{extra}")


def cmd_where(_: argparse.Namespace) -> int:
    import dagster as dg

    from app.definitions import defs

    prepare_instance_home()
    with dg.DagsterInstance.get() as instance:
        _print_where(defs, instance)
    return 0


def cmd_verify(args: argparse.Namespace) -> int:
    """Rehash every stored version (or one asset's) and list the ones that do not match."""
    from pipeline import storage

    root = storage.ensure_root(settings.storage_root_default())
    folders = storage.version_dirs(root, args.asset)
    if args.asset and not folders:
        print(f"error: no stored version of asset {args.asset!r} under {root}", file=sys.stderr)
        return 2
    bad = 0
    for folder in folders:
        try:
            storage.read(folder, verify="full")
        except storage.StorageError as exc:
            bad += 1
            print(f"BAD {folder.relative_to(root)}: {exc}")
    print(f"verified {len(folders)} versions under {root}: {len(folders) - bad} ok, {bad} bad")
    return 1 if bad else 0


def cmd_gc(args: argparse.Namespace) -> int:
    import dagster as dg

    from app.definitions import defs
    from pipeline import storage
    from pipeline.garbage import collect_garbage

    prepare_instance_home()
    root = storage.ensure_root(settings.storage_root_default())
    with dg.DagsterInstance.get() as instance:
        keep = referenced_paths(defs, instance, root)
    report = collect_garbage(root, keep, dry_run=args.dry_run)
    verb = "would remove" if args.dry_run else "removed"
    for path in report.removed + report.cache_removed:
        print(f"{verb} {path}")
    print(f"{verb} {len(report.removed)} folders ({report.freed_bytes / 1e6:.1f} MB); "
          f"kept {len(report.kept)} referenced versions")
    print(f"{verb} {len(report.cache_removed)} cache entries ({report.cache_freed_bytes / 1e6:.1f} "
          f"MB); kept {len(report.cache_kept)} in use or younger than an hour")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m app.cli", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="materialize every asset of the configured dataset and "
                          "print where the results are (run on the whole full_rebuild job)")
    run = sub.add_parser("run", help="materialize a job, or the assets --select picks")
    run.add_argument("--select", default=None, metavar="EXPR",
                     help="asset key or Dagster selection expression, e.g. '*sequences', "
                     "'items,sequences', '+key:sequences', 'group:prepare'")
    for command in (demo, run):
        command.add_argument("--job", default="full_rebuild")
        command.add_argument("--executor", choices=("in_process", "multiprocess"), default=None,
                             help="in_process (fastest for many small steps) or multiprocess "
                             "(one process per step, CPU steps in parallel, as deployed); "
                             "default: the dataset config's `executor`")
        command.add_argument("--missing", action="store_true",
                             help="only the selected assets that were never materialized")
        command.set_defaults(func=cmd_run)
    sub.add_parser("where", help="print the latest version folder of every asset").set_defaults(func=cmd_where)
    verify = sub.add_parser("verify", help="rehash every stored version and list the bad ones "
                            "(exit code 1 if any)")
    verify.add_argument("--asset", default=None, metavar="KEY",
                        help="only this asset's versions (e.g. sequences)")
    verify.set_defaults(func=cmd_verify)
    gc = sub.add_parser("gc", help="remove versions no latest materialization references")
    gc.add_argument("--dry-run", action="store_true")
    gc.set_defaults(func=cmd_gc)
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except Exception as exc:  # a user-facing tool: one clear line, not a traceback
        from app.selection import SelectionError
        from pipeline.config import ConfigError
        from pipeline.storage import StorageError

        if isinstance(exc, ConfigError | StorageError | SelectionError):
            print(f"error: {exc}", file=sys.stderr)
            return 2
        raise


if __name__ == "__main__":
    sys.exit(main())

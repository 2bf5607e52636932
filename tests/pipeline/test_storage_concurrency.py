"""Concurrent writers of one asset never corrupt storage (reliability guarantee).

Processes race to commit versions of the same asset (some with identical
content, some different). Every committed folder must be complete and
readable, the LATEST pointer must name one of them, and no staging leftovers
of finished writers may remain.
"""

import multiprocessing as mp

import dagster as dg
import polars as pl

from pipeline import storage
from pipeline.io_managers import VersionedIOManager, VersionStore


def _writer(root: str, content: int, barrier) -> str:
    frame = pl.DataFrame({"x": list(range(content * 1000, content * 1000 + 20_000))})
    staged = storage.stage(storage.ensure_root(root), frame)
    barrier.wait(timeout=120)  # commit at the same moment; a lost writer fails, never hangs
    return str(storage.commit(storage.ensure_root(root), ["shared"], None, staged))


def test_racing_writers_leave_complete_versions_and_a_consistent_pointer(tmp_path):
    root = str(tmp_path / "store")
    contents = [0, 0, 1, 1, 2, 3]
    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        barrier = manager.Barrier(len(contents))
        with ctx.Pool(len(contents)) as pool:
            pending = pool.starmap_async(_writer, [(root, c, barrier) for c in contents])
            paths = pending.get(timeout=300)  # a worker that dies loses its task: fail loudly
    assert len(set(paths)) == 4  # identical content shares one folder
    for path, content in zip(paths, contents, strict=True):
        frame = storage.read(path)
        assert frame.height == 20_000 and frame["x"][0] == content * 1000
    latest = storage.latest_version(tmp_path / "store", ["shared"])
    assert latest in {p.rsplit("/", 1)[1] for p in paths}
    assert not any((tmp_path / "store" / storage.STAGING).iterdir())


def _materialize(root: str, home: str, value: int) -> bool:
    @dg.asset(code_version="1", name="shared")
    def shared(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(pl.DataFrame({"v": [value] * 50_000}))

    store = VersionStore(root=root)
    with dg.DagsterInstance.from_config(home) as instance:
        return dg.materialize([shared], resources={"store": store, "io_manager": VersionedIOManager(store=store)},
                              instance=instance).success


def test_two_dagster_runs_materializing_one_asset_at_once(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with dg.DagsterInstance.from_config(str(home)):
        pass  # create the instance's SQLite schema once, as `make demo` does before any run
    ctx = mp.get_context("spawn")
    with ctx.Pool(2) as pool:
        results = pool.starmap_async(_materialize, [(str(tmp_path / "s"), str(home), 1),
                                                    (str(tmp_path / "s"), str(home), 2)]
                                     ).get(timeout=300)
    assert results == [True, True]
    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.fetch_materializations(dg.AssetKey("shared"), limit=10).records
        assert len(records) == 2
        for record in records:
            meta = record.asset_materialization.metadata
            frame = storage.read(meta["path"].value)
            assert frame.height == 50_000 and meta["version"].value == meta["path"].value.rsplit("/", 1)[1]
        latest_path = records[0].asset_materialization.metadata["path"].value
    assert storage.read(latest_path)["v"].n_unique() == 1

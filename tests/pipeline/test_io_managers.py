"""The IO manager inside real Dagster runs: data versions, recorded-version loading, metadata."""

import dagster as dg
import polars as pl

from pipeline import storage
from pipeline.io_managers import VersionedIOManager, VersionStore
from tests.conftest import latest_materialization


def _defs(root, value_holder):
    @dg.asset(code_version="1")
    def upstream(store: VersionStore) -> dg.MaterializeResult:
        return store.publish(pl.DataFrame({"x": value_holder["x"]}))

    @dg.asset(code_version="1")
    def downstream(store: VersionStore, upstream: pl.DataFrame) -> dg.MaterializeResult:
        return store.publish(upstream.with_columns(y=pl.col("x") * 2))

    store = VersionStore(root=str(root))
    return [upstream, downstream], {"store": store, "io_manager": VersionedIOManager(store=store)}


def test_data_version_is_content_hash_and_metadata_complete(tmp_path, instance):
    holder = {"x": [1, 2, 3]}
    assets, resources = _defs(tmp_path / "s", holder)
    assert dg.materialize(assets, resources=resources, instance=instance).success
    mat = latest_materialization(instance, "upstream")
    version = mat.metadata["version"].value
    assert mat.tags["dagster/data_version"] == version
    path = mat.metadata["path"].value
    assert path.endswith(version) and storage.read(path).equals(pl.DataFrame({"x": [1, 2, 3]}))
    assert mat.metadata["dagster/row_count"].value == 3
    assert [c.name for c in mat.metadata["dagster/column_schema"].value.columns] == ["x"]
    assert mat.metadata["bytes"].value > 0


def test_downstream_loads_the_recorded_version_not_the_newest_folder(tmp_path, instance):
    holder = {"x": [1, 2, 3]}
    root = tmp_path / "s"
    assets, resources = _defs(root, holder)
    assert dg.materialize(assets, resources=resources, instance=instance, selection=["upstream"]).success
    # Another writer commits a different version and moves LATEST; no materialization records it.
    storage.write(root, ["upstream"], pl.DataFrame({"x": [100]}))
    assert dg.materialize(assets, resources=resources, instance=instance, selection=["downstream"]).success
    out = storage.read(latest_materialization(instance, "downstream").metadata["path"].value)
    assert out["y"].to_list() == [2, 4, 6]


def test_same_content_keeps_data_version_changed_content_changes_it(tmp_path, instance):
    holder = {"x": [1, 2, 3]}
    assets, resources = _defs(tmp_path / "s", holder)
    dg.materialize(assets, resources=resources, instance=instance)
    v1 = latest_materialization(instance, "upstream").tags["dagster/data_version"]
    dg.materialize(assets, resources=resources, instance=instance)
    v2 = latest_materialization(instance, "upstream").tags["dagster/data_version"]
    holder["x"] = [4]
    dg.materialize(assets, resources=resources, instance=instance)
    v3 = latest_materialization(instance, "upstream").tags["dagster/data_version"]
    assert v1 == v2 != v3


def test_missing_upstream_version_is_a_clear_failure(tmp_path, instance):
    assets, resources = _defs(tmp_path / "s", {"x": [1]})
    result = dg.materialize(assets, resources=resources, instance=instance, selection=["downstream"],
                            raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert "upstream has no stored version" in failure.step_failure_data.error.message


def test_a_table_file_gets_the_row_count_and_schema_of_its_footer(tmp_path):
    store = VersionStore(root=str(tmp_path / "store"))
    frame = pl.DataFrame({"user": ["a", "b", "c"], "x": [1, 2, 3]})
    scratch = store.scratch()
    frame.write_parquet(scratch / "t.parquet")
    result = store.publish(storage.TableFile(scratch / "t.parquet"))
    assert result.metadata["dagster/row_count"] == 3
    columns = result.metadata["dagster/column_schema"].columns
    assert [(c.name, c.type) for c in columns] == [("user", "String"), ("x", "Int64")]
    assert result.metadata["kind"] == "table"

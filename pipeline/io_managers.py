"""Dagster adapter over :mod:`pipeline.storage`: versioned Parquet tables and checkpoints.

Why two halves: Dagster lets only the asset body set a data version (an IO
manager cannot, dagster issue 15584). So an asset calls :meth:`VersionStore.publish`,
which serializes into staging and hashes, and returns a ``MaterializeResult``
carrying that hash as the data version; the IO manager then commits the staged
folder with one rename and records its path. Loading reads the path recorded by
the upstream asset's latest materialization, so a downstream asset gets exactly
the version its upstream reported, never a newer folder written by another run.
"""

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
import pyarrow.parquet as pq

from pipeline import settings, storage

# metadata naming the version folders (relative to the storage root) that a version reads
# besides its upstream assets, e.g. raw_sources -> the generated demo corpus; `gc` keeps them
NEEDS = "needs"
# metadata naming the folder of <root>/.cache/ that an asset's work lives in (relative to the
# root), e.g. the embedding cache of its model or the LLM chunks of its prompts; `gc` keeps it
CACHE = "cache"


def _table_metadata(schema: Mapping[str, pl.DataType], rows: int) -> dict[str, Any]:
    """Dagster's row count and column schema of a table."""
    columns = dg.TableSchema(
        columns=[dg.TableColumn(name, str(dtype)) for name, dtype in schema.items()]
    )
    return {"dagster/row_count": rows, "dagster/column_schema": columns}


class VersionStore(dg.ConfigurableResource):
    """Where versions live; assets use it to stage their output and get a data version."""

    root: str = settings.storage_root_default()
    # how deeply a version is checked before it is loaded: fast | full (pipeline/integrity.py)
    verify: str = "fast"

    def path(self) -> Path:
        return storage.ensure_root(self.root)

    def scratch(self) -> Path:
        """Folder for producers that write big files themselves (moved in on publish)."""
        return storage.scratch_dir(self.path())

    def publish(self, value: Any, **metadata: Any) -> dg.MaterializeResult:
        """Stage ``value`` and return the result an asset should return.

        Metadata always includes the version and byte size; tables add row count
        and schema (per table for a bundle).
        """
        try:
            staged = storage.stage(self.path(), value)
        except storage.StorageError as exc:  # disk full, size limit: one line, not a traceback
            raise dg.Failure(description=str(exc), metadata={"error": "StorageError"}) from exc
        meta: dict[str, Any] = {
            "version": staged.version,
            "bytes": staged.num_bytes,
            "kind": staged.kind,
        }
        if isinstance(value, pl.DataFrame):
            meta.update(_table_metadata(value.schema, value.height))
        elif isinstance(value, storage.TableFile):  # from the footer, without reading the rows
            stored = staged.staging_path / "table.parquet"
            meta.update(_table_metadata(pl.read_parquet_schema(stored),
                                        pq.read_metadata(stored).num_rows))
        elif staged.kind == "tables":
            for name, frame in value.items():
                meta[f"rows/{name}"] = frame.height
                meta[f"schema/{name}"] = _table_metadata(frame.schema, frame.height)[
                    "dagster/column_schema"]
            meta["dagster/row_count"] = sum(f.height for f in value.values())
        meta.update(metadata)
        return dg.MaterializeResult(
            value=staged, data_version=dg.DataVersion(staged.version), metadata=meta
        )


class VersionedIOManager(dg.ConfigurableIOManager):
    """Commits staged versions atomically and loads the recorded upstream version."""

    store: dg.ResourceDependency[VersionStore]

    def handle_output(self, context: dg.OutputContext, obj: Any) -> None:
        root = self.store.path()
        partition = context.asset_partition_key if context.has_asset_partitions else None
        try:
            staged = obj if isinstance(obj, storage.StagedVersion) else storage.stage(root, obj)
            final = storage.commit(root, context.asset_key.path, partition, staged)
        except storage.StorageError as exc:
            raise dg.Failure(description=str(exc), metadata={"error": "StorageError"}) from exc
        context.add_output_metadata({"path": dg.MetadataValue.path(str(final))})
        if not isinstance(obj, storage.StagedVersion):
            context.add_output_metadata({"version": staged.version, "bytes": staged.num_bytes})

    def load_input(self, context: dg.InputContext) -> Any:
        key = context.asset_key
        partition = context.asset_partition_key if context.has_asset_partitions else None
        path = self._recorded_path(context, key, partition)
        if path is None:
            raise dg.Failure(
                f"asset {key.to_user_string()} has no stored version"
                f"{f' for partition {partition}' if partition else ''}: materialize it first"
            )
        try:
            return storage.read(path, verify=self.store.verify)
        except storage.CorruptVersion as exc:
            # a damaged input fails the step with the file named; nothing recomputes over it
            raise dg.Failure(description=f"input {key.to_user_string()}: {exc}",
                             metadata={"error": "CorruptVersion", "path": str(path)}) from None

    def _recorded_path(
        self, context: dg.InputContext, key: dg.AssetKey, partition: str | None
    ) -> Path | None:
        instance = getattr(context, "_instance", None)  # absent in build_input_context tests
        if instance is not None:
            records = instance.fetch_materializations(
                dg.AssetRecordsFilter(
                    asset_key=key, asset_partitions=[partition] if partition else None
                ),
                limit=1,
            ).records
            if records:
                mat = records[0].asset_materialization
                entry = mat.metadata.get("path") if mat else None
                if entry is not None:
                    return Path(entry.value)
        version = storage.latest_version(self.store.path(), key.path, partition)
        if version is None:
            return None
        return storage.asset_dir(self.store.path(), key.path, partition) / version

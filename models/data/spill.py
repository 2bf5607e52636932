"""Out-of-core reading: a JSON-lines dump split into hash partitions on disk, by one column.

Why: a 20M-review file parsed whole holds about 80 bytes a review in memory (1.8 GB),
and every later step (duplicates, joins) needs all rows of one user together, not all
rows at once. :func:`spill_records` reads the file block by block with the reader of
models/data/readers.py and appends each block's rows to the partition files of their
key, so its peak memory is a few blocks whatever the file size.
"""

from dataclasses import dataclass, field
from pathlib import Path

import polars as pl
import pyarrow as pa

from models.data.readers import BLOCK_BYTES, RecordSpec, Tally, iter_chunks, require_records

# Fixed seeds: a key lands in the same partition in every run and in every file read with
# the same partition count, so partition i of two files holds the same users.
_PARTITION_SEED = 0x4C474344
# lz4 Arrow IPC: spill files are read back once, so the cheapest codec wins over Parquet's.
_SPILL_OPTIONS = pa.ipc.IpcWriteOptions(compression="lz4")


def partition_of(key: str, partitions: int) -> pl.Expr:
    """Partition number (UInt64) of each row's ``key``: a seeded polars hash modulo the count."""
    return pl.col(key).hash(_PARTITION_SEED) % partitions


@dataclass
class SpillResult:
    """A whole file split into ``len(parts)`` partition files by a hash of one column.

    ``parts[i]`` is an Arrow IPC stream (read it with :meth:`read`) or None when no row
    fell in partition i.
    """

    parts: list[Path | None]
    schema: dict[str, pl.DataType]  # the spec's out_schema
    quarantine: pl.DataFrame
    lines: int = 0
    blocks: int = 0
    blocks_fallback: int = 0
    rows: int = 0
    distinct: dict[str, pl.Series] = field(default_factory=dict)  # column -> its distinct values

    def read(self, number: int) -> pl.DataFrame:
        """Partition ``number``'s rows in line order."""
        return _read_partition(self.parts[number], self.schema)


def _read_partition(part: Path | None, schema: dict[str, pl.DataType]) -> pl.DataFrame:
    """One partition's rows (an empty frame of ``schema`` for an empty partition)."""
    if part is None:
        return pl.DataFrame(schema=schema)
    with pa.ipc.open_stream(part) as reader:
        return pl.from_arrow(reader.read_all(), schema=schema)


def merge_distinct(seen: list[pl.Series], limit: int = 64) -> list[pl.Series]:
    """Fold a growing list of per-block distinct values into one series now and then."""
    return [pl.concat(seen).unique()] if len(seen) >= limit else seen


class _PartitionWriters:
    """One lz4 Arrow IPC stream per partition, opened when its first row arrives."""

    def __init__(self, folder: Path, partitions: int, schema: pa.Schema):
        self.folder, self.schema = folder, schema
        self.files: list[Path | None] = [None] * partitions
        self.writers: dict[int, pa.ipc.RecordBatchStreamWriter] = {}

    def write(self, number: int, frame: pl.DataFrame) -> None:
        if number not in self.writers:
            self.files[number] = self.folder / f"part-{number:04d}.arrows"
            self.writers[number] = pa.ipc.new_stream(self.files[number], self.schema,
                                                     options=_SPILL_OPTIONS)
        self.writers[number].write_table(frame.to_arrow().cast(self.schema))

    def close(self) -> None:
        for writer in self.writers.values():
            writer.close()


def spill_records(path: Path, spec: RecordSpec, folder: Path, partitions: int, key: str,
                  block_bytes: int = BLOCK_BYTES, source: str | None = None,
                  distinct: tuple[str, ...] = ()) -> SpillResult:
    """Read a whole file block by block into ``partitions`` files split by a hash of ``key``.

    Rows sharing ``key`` land in the same partition, so later steps run one partition at a
    time. Each block's rows are appended to its partitions' files in line order.
    ``distinct`` names columns whose distinct values are collected on the way (the
    reviewed items, which bound the metadata read). Errors and quarantine are as for
    ``models.data.readers.read_records``.
    """
    if partitions < 1:
        raise ValueError(f"partitions={partitions}; must be at least 1")
    source = str(path) if source is None else source
    folder.mkdir(parents=True, exist_ok=True)
    schema = spec.out_schema()
    out = _PartitionWriters(folder, partitions, pl.DataFrame(schema=schema).to_arrow().schema)
    seen: dict[str, list[pl.Series]] = {name: [] for name in distinct}
    tally, rows = Tally(), 0
    try:
        for chunk in iter_chunks(path, spec, block_bytes, source, tally):
            rows += chunk.frame.height
            for name in distinct:
                seen[name] = merge_distinct([*seen[name], chunk.frame[name].unique()])
            split = chunk.frame.with_columns(_part=partition_of(key, partitions)) \
                .partition_by("_part", as_dict=True, include_key=False)
            for (number,), frame in split.items():
                out.write(number, frame)
    finally:
        out.close()
    quarantine = tally.quarantine()
    require_records(path, tally.lines, rows, quarantine)
    values = {name: pl.concat(found).unique() for name, found in seen.items()}  # a block each
    return SpillResult(out.files, schema, quarantine, tally.lines, tally.blocks,
                       tally.blocks_fallback, rows, values)

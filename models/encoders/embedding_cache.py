"""Embeddings cached per model identity and text hash, as append-only Parquet shards.

Each shard is written to a temporary name and renamed into place, so a killed run
never leaves half a shard; a reader that races a compaction lists the shards again.
"""

import hashlib
import os
import uuid
from pathlib import Path

import numpy as np
import polars as pl

from models.encoders.embedding_config import EmbeddingError

_MAX_SHARDS = 8  # compact the cache folder into one shard beyond this many


def text_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Append-only Parquet shards ``(text_sha256, embedding)`` in one folder per model identity."""

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def _shards(self) -> list[Path]:
        if not self.folder.is_dir():
            return []
        return sorted(p for p in self.folder.glob("*.parquet") if not p.name.startswith("."))

    def read(self) -> pl.DataFrame | None:
        """All cached rows, one per text hash, or None when the cache is empty."""
        for _ in range(3):  # a concurrent compaction may remove a listed shard: list again
            try:
                frames = [self._read_shard(p) for p in self._shards()]
                break
            except FileNotFoundError:
                continue
        else:
            raise EmbeddingError(f"embedding cache {self.folder} keeps changing while being read")
        if not frames:
            return None
        return pl.concat(frames).unique("text_sha256", keep="first", maintain_order=True)

    @staticmethod
    def _read_shard(path: Path) -> pl.DataFrame:
        if not path.exists():
            raise FileNotFoundError(path)
        try:
            return pl.read_parquet(path)
        except (pl.exceptions.PolarsError, OSError) as exc:
            raise EmbeddingError(f"embedding cache shard {path} is unreadable ({exc}); "
                                 "delete it and the texts it held are encoded again") from exc

    def add(self, hashes: list[str], vectors: np.ndarray) -> None:
        """Write one new shard atomically; compact when shards pile up."""
        if not hashes:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._write(pl.DataFrame({"text_sha256": hashes, "embedding": vectors}))
        shards = self._shards()
        if len(shards) > _MAX_SHARDS:
            merged = pl.concat([pl.read_parquet(p) for p in shards]).unique(
                "text_sha256", keep="first", maintain_order=True)
            self._write(merged)
            for shard in shards:
                shard.unlink(missing_ok=True)

    def _write(self, frame: pl.DataFrame) -> None:
        name = uuid.uuid4().hex
        tmp = self.folder / f".{name}.tmp"
        frame.write_parquet(tmp)
        os.replace(tmp, self.folder / f"{name}.parquet")

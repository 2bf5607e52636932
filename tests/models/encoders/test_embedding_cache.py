"""The embedding cache: one row per text hash, atomic shards, compaction, damage named."""

import numpy as np
import pytest

from models.encoders.embedding_cache import EmbeddingCache, text_hash
from models.encoders.embedding_config import EmbeddingError


def vectors(n: int, start: int = 0) -> np.ndarray:
    return np.arange(start, start + n * 3, dtype=np.float32).reshape(n, 3)


def test_an_empty_cache_reads_as_none_and_each_text_hash_once(tmp_path):
    cache = EmbeddingCache(tmp_path / "model-1")
    assert cache.read() is None
    cache.add([text_hash("a"), text_hash("b")], vectors(2))
    cache.add([text_hash("b")], vectors(1))  # a racing writer's copy of "b"
    rows = cache.read()
    assert sorted(rows["text_sha256"].to_list()) == sorted([text_hash("a"), text_hash("b")])
    assert dict(zip(rows["text_sha256"], rows["embedding"].to_list(), strict=True))[text_hash("a")] == [0, 1, 2]


def test_shards_are_compacted_beyond_the_limit_without_losing_a_row(tmp_path):
    cache = EmbeddingCache(tmp_path)
    for i in range(12):
        cache.add([text_hash(str(i))], vectors(1, start=i))
    assert len(list(tmp_path.glob("*.parquet"))) <= 9 and not list(tmp_path.glob(".*"))
    assert cache.read().height == 12


def test_a_damaged_shard_is_named(tmp_path):
    cache = EmbeddingCache(tmp_path)
    cache.add([text_hash("a")], vectors(1))
    shard = next(tmp_path.glob("*.parquet"))
    shard.write_bytes(b"not parquet")
    with pytest.raises(EmbeddingError, match=f"embedding cache shard {shard} is unreadable"):
        cache.read()

"""Garbage collection: unreferenced versions, stale staging and stale cache entries go."""

import os
import time
from pathlib import Path

import pytest

from pipeline import storage
from pipeline.garbage import collect_garbage
from tests.pipeline.test_storage import frame


@pytest.fixture
def root(tmp_path):
    return storage.ensure_root(tmp_path / "store")


def test_gc_removes_unreferenced_versions_and_old_staging(root):
    keep = storage.write(root, ["t"], frame())
    drop = storage.write(root, ["t"], frame(offset=1))
    stale = storage.stage(root, frame(offset=2)).staging_path
    os.utime(stale, (0, 0))
    fresh = storage.stage(root, frame(offset=3)).staging_path
    dry = collect_garbage(root, {keep}, dry_run=True)
    assert drop in dry.removed and drop.exists()
    report = collect_garbage(root, {keep})
    assert keep.exists() and not drop.exists() and not stale.exists() and fresh.exists()
    assert report.freed_bytes > 0


def _aged(folder: Path, files: dict[str, bytes], age_s: float) -> Path:
    folder.mkdir(parents=True)
    for name, data in files.items():
        (folder / name).write_bytes(data)
    then = time.time() - age_s
    for path in [folder, *folder.rglob("*")]:
        os.utime(path, (then, then))
    return folder


def test_gc_removes_stale_unreferenced_cache_entries_and_reports_their_bytes(root):
    cache = root / storage.CACHE
    old_model = _aged(cache / "embeddings" / "old-model", {"s.parquet": b"x" * 1000}, 7200)
    current = _aged(cache / "embeddings" / "current-model", {"s.parquet": b"y" * 500}, 7200)
    killed = _aged(cache / "lgcd" / "killed-run", {"last.pt": b"z" * 300}, 7200)
    running = _aged(cache / "lgcd" / "running", {"last.pt": b"w" * 300}, 10)
    dry = collect_garbage(root, {current}, dry_run=True)
    assert set(dry.cache_removed) == {old_model, killed} and old_model.exists()
    report = collect_garbage(root, {current})
    assert report.cache_freed_bytes == 1300
    assert not old_model.exists() and not killed.exists()
    assert current.exists() and running.exists()
    assert set(report.cache_kept) == {current, running}

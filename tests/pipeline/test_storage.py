import os
import pickle
import time
from pathlib import Path

import polars as pl
import pytest
import torch

from pipeline import storage


@pytest.fixture
def root(tmp_path):
    return storage.ensure_root(tmp_path / "store")


def frame(n=5, offset=0):
    return pl.DataFrame({"user": [f"u{i}" for i in range(n)], "x": [i + offset for i in range(n)],
                         "v": [[float(i), 0.5] for i in range(n)]})


def test_parquet_round_trip_is_exact(root):
    df = frame()
    path = storage.write(root, ["t"], df)
    back = storage.read(path)
    assert back.equals(df) and back.schema == df.schema


def test_bundle_round_trip(root):
    bundle = {"a": frame(3), "b": frame(4, 10)}
    back = storage.read(storage.write(root, ["bundle"], bundle))
    assert set(back) == {"a", "b"} and back["a"].equals(bundle["a"]) and back["b"].equals(bundle["b"])


def test_checkpoint_round_trip_is_exact(root):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8))
    ckpt = storage.Checkpoint(model.state_dict(), {"d": 8, "layers": [1, 2]}, {"epoch": 3})
    back = storage.read(storage.write(root, ["model"], ckpt))
    assert back.config == ckpt.config and back.extra == ckpt.extra
    for name, tensor in ckpt.state_dict.items():
        torch.testing.assert_close(back.state_dict[name], tensor, rtol=0, atol=0)


def test_same_content_same_version_changed_content_new_version(root):
    v1 = storage.stage(root, frame()).version
    v2 = storage.stage(root, frame()).version
    v3 = storage.stage(root, frame(offset=1)).version
    assert v1 == v2 != v3


def test_checkpoint_version_is_stable_across_clones(root):
    sd = {"w": torch.arange(6.0).reshape(2, 3)}
    a = storage.checkpoint_hash(storage.Checkpoint(sd, {"d": 3}))
    b = storage.checkpoint_hash(storage.Checkpoint({"w": sd["w"].clone()}, {"d": 3}))
    c = storage.checkpoint_hash(storage.Checkpoint({"w": sd["w"] + 1}, {"d": 3}))
    assert a == b != c


def test_crash_between_write_and_rename_keeps_previous_version(root):
    first = storage.write(root, ["t"], frame())
    staged = storage.stage(root, frame(offset=7))  # the process "dies" before commit
    assert staged.staging_path.exists()
    folder = storage.asset_dir(root, ["t"])
    visible = sorted(p.name for p in folder.iterdir())
    assert visible == sorted([first.name, storage.LATEST])  # no partial folder visible
    assert storage.latest_version(root, ["t"]) == first.name
    assert storage.read(first).equals(frame())


def test_crash_during_staging_leaves_nothing(root, monkeypatch):
    def boom(self, *a, **k):
        raise KeyboardInterrupt  # a kill in the middle of serialization
    monkeypatch.setattr(pl.DataFrame, "write_parquet", boom)
    with pytest.raises(KeyboardInterrupt):
        storage.stage(root, frame())
    assert not any((root / storage.STAGING).iterdir())
    assert not (root / "t").exists()


def test_committing_the_same_content_twice_reuses_the_folder(root):
    a = storage.write(root, ["t"], frame())
    b = storage.write(root, ["t"], frame())
    assert a == b and len([p for p in a.parent.iterdir() if p.is_dir()]) == 1


def test_partitioned_layout(root):
    path = storage.write(root, ["enc"], frame(), partition="A")
    assert path.parent == root / "enc" / "A"
    with pytest.raises(storage.StorageError, match="invalid partition"):
        storage.write(root, ["enc"], frame(), partition="../x")


def test_checkpoint_with_arbitrary_objects_is_refused(tmp_path):
    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned",))

    bad = tmp_path / "checkpoint.pt"
    torch.save({"state_dict": {}, "config": {}, "payload": Evil()}, bad)
    with pytest.raises(storage.StorageError, match="refusing checkpoint"):
        storage.load_checkpoint(bad)
    pickled = tmp_path / "p.pt"
    pickled.write_bytes(pickle.dumps({"state_dict": {}, "x": Evil()}))
    with pytest.raises(storage.StorageError, match="refusing checkpoint"):
        storage.load_checkpoint(pickled)


def test_unwritable_or_uncreatable_root_names_the_path(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(storage.StorageError, match=str(blocker / "sub")):
        storage.ensure_root(blocker / "sub")
    if os.geteuid() != 0:  # root ignores permission bits
        ro = tmp_path / "ro"
        ro.mkdir()
        ro.chmod(0o500)
        with pytest.raises(storage.StorageError, match="not writable"):
            storage.ensure_root(ro)


def test_unwritable_root_detected_via_probe(tmp_path, monkeypatch):
    real_write = type(tmp_path).write_bytes

    def deny(self, data):
        if self.name.startswith(".write-probe"):
            raise PermissionError(13, "Permission denied")
        return real_write(self, data)

    monkeypatch.setattr(type(tmp_path), "write_bytes", deny)
    with pytest.raises(storage.StorageError, match=f"{tmp_path / 'r'}.*not writable"):
        storage.ensure_root(tmp_path / "r")


def test_gc_removes_unreferenced_versions_and_old_staging(root):
    keep = storage.write(root, ["t"], frame())
    drop = storage.write(root, ["t"], frame(offset=1))
    stale = storage.stage(root, frame(offset=2)).staging_path
    os.utime(stale, (0, 0))
    fresh = storage.stage(root, frame(offset=3)).staging_path
    dry = storage.collect_garbage(root, {keep}, dry_run=True)
    assert drop in dry.removed and drop.exists()
    report = storage.collect_garbage(root, {keep})
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
    dry = storage.collect_garbage(root, {current}, dry_run=True)
    assert set(dry.cache_removed) == {old_model, killed} and old_model.exists()
    report = storage.collect_garbage(root, {current})
    assert report.cache_freed_bytes == 1300
    assert not old_model.exists() and not killed.exists()
    assert current.exists() and running.exists()
    assert set(report.cache_kept) == {current, running}


def test_a_table_file_from_scratch_is_moved_in_and_one_from_elsewhere_copied(root, tmp_path):
    df = frame(7)
    scratch = storage.scratch_dir(root)
    df.write_parquet(scratch / "t.parquet")
    moved = storage.write(root, ["t"], storage.TableFile(scratch / "t.parquet"))
    assert storage.read(moved).equals(df) and not (scratch / "t.parquet").exists()
    outside = tmp_path / "elsewhere.parquet"
    df.write_parquet(outside)
    copied = storage.write(root, ["t"], storage.TableFile(outside))
    assert outside.exists() and copied == moved  # same bytes, same version

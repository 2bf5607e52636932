import os
import pickle

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


def test_version_dirs_lists_committed_versions_without_caches(root):
    table = storage.write(root, ["t"], frame())
    cached = storage.write(root / storage.CACHE / "lgcd", ["x"], frame(offset=1))
    assert storage.version_dirs(root) == [table]
    assert storage.version_dirs(root, "t") == [table] and storage.version_dirs(root, "missing") == []
    assert set(storage.committed_dirs(root)) == {table, cached}

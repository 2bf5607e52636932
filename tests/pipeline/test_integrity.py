"""A stored version is checked against what was written before anything reads it.

Unit tests drive pipeline/storage.py and pipeline/integrity.py on small values; the
slow test damages a copy of the TINY run's storage one file at a time, every table and
checkpoint of it, and checks that the IO manager's load and `app.cli verify` both
refuse it with the asset, the version and the file named.
"""

import json
import os
import shutil
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import torch

from pipeline import integrity, storage
from pipeline.io_managers import VersionedIOManager, VersionStore
from tests.conftest import run_cli


def frame() -> pl.DataFrame:
    return pl.DataFrame({"user": ["a", "b", "c"], "item": [1, 2, 3]})


def flip_one_byte(file: Path, offset: int | None = None) -> None:
    """Bit rot: one byte inverted in place, size and mtime kept as they were."""
    stat = file.stat()
    data = bytearray(file.read_bytes())
    at = len(data) // 2 if offset is None else offset
    data[at] ^= 0xFF
    file.write_bytes(bytes(data))
    os.utime(file, ns=(stat.st_atime_ns, stat.st_mtime_ns))


def test_manifest_lists_every_file_and_leaves_the_version_unchanged(tmp_path):
    folder = storage.write(tmp_path, ["interactions"], frame())
    manifest = json.loads((folder / integrity.MANIFEST).read_text())
    assert manifest["version"] == folder.name and manifest["kind"] == "table"
    assert set(manifest["files"]) == {"KIND", "table.parquet"}
    # the version hashes the content only: the same as before manifests existed
    (folder / integrity.MANIFEST).unlink()
    assert integrity.folder_hash(folder)[0] == folder.name
    assert storage.read(folder).equals(frame())  # an old version without a manifest still loads


@pytest.mark.parametrize("manifest", [True, False])
def test_a_flipped_byte_in_a_table_is_refused_with_asset_version_and_file(tmp_path, manifest):
    folder = storage.write(tmp_path, ["interactions"], frame())
    if not manifest:
        (folder / integrity.MANIFEST).unlink()
    flip_one_byte(folder / "table.parquet")
    with pytest.raises(storage.CorruptVersion) as err:
        storage.read(folder)
    text = str(err.value)
    assert f"stored version {folder.name} of asset 'interactions'" in text
    assert ("file table.parquet differs" in text) if manifest else ("hashes to" in text)


def test_a_truncated_or_extra_file_is_refused(tmp_path):
    folder = storage.write(tmp_path, ["items"], frame())
    data = (folder / "table.parquet").read_bytes()
    (folder / "table.parquet").write_bytes(data[:-10])
    with pytest.raises(storage.CorruptVersion, match="table.parquet has .* bytes, .* were written"):
        storage.read(folder)
    (folder / "table.parquet").write_bytes(data)
    (folder / "notes.txt").write_text("hand edit")
    with pytest.raises(storage.CorruptVersion, match="file notes.txt was added after publish"):
        storage.read(folder)


def test_a_damaged_checkpoint_is_refused_before_and_after_loading(tmp_path):
    ckpt = storage.Checkpoint({"w": torch.arange(64, dtype=torch.float32)}, {"d": 8})
    folder = storage.write(tmp_path, ["sequence_encoder_a"], ckpt)
    assert torch.equal(storage.read(folder).state_dict["w"], ckpt.state_dict["w"])
    original = (folder / "checkpoint.pt").read_bytes()
    flip_one_byte(folder / "checkpoint.pt")
    with pytest.raises(storage.CorruptVersion, match="file checkpoint.pt differs"):
        storage.read(folder)
    # other weights written over it with a manifest to match: the tensor hash still refuses
    (folder / "checkpoint.pt").write_bytes(original)
    other = storage.Checkpoint({"w": torch.zeros(64)}, {"d": 8})
    torch.save({"state_dict": other.state_dict, "config": other.config, "extra": {}},
               folder / "checkpoint.pt")
    integrity.write_manifest(folder, folder.name, "checkpoint")
    with pytest.raises(storage.CorruptVersion, match="holds weights that hash to"):
        storage.read(folder)


def test_folders_of_files_check_sizes_fast_and_bytes_in_full(tmp_path):
    source = tmp_path / "model"
    source.mkdir()
    (source / "weights.bin").write_bytes(bytes(range(256)) * 64)
    folder = storage.write(tmp_path / "root", ["llm_model"], storage.FileTree(source))
    flip_one_byte(folder / "files" / "weights.bin")
    assert isinstance(storage.read(folder), storage.FileTree)  # fast: sizes and mtimes only
    with pytest.raises(storage.CorruptVersion, match="file files/weights.bin differs"):
        storage.read(folder, verify="full")
    os.utime(folder / "files" / "weights.bin")  # an edit that moved the mtime: caught fast
    with pytest.raises(storage.CorruptVersion, match="modified after publish"):
        storage.read(folder)
    with pytest.raises(ValueError, match="verify level 'deep'"):
        storage.read(folder, verify="deep")


def _load(root: Path, key: str):
    store = VersionStore(root=str(root))
    manager = VersionedIOManager(store=store)
    return manager.load_input(dg.build_input_context(asset_key=dg.AssetKey(key)))


@pytest.mark.slow
def test_every_table_and_checkpoint_of_a_run_names_its_damage(tmp_path, tiny_pipeline):
    """Done-when of the verification issue, on a copy of the TINY run's storage."""
    root = tmp_path / "storage"
    shutil.copytree(tiny_pipeline.root, root, symlinks=True,
                    ignore=shutil.ignore_patterns(storage.STAGING, storage.CACHE))
    env = {**os.environ, "LGCD_STORAGE_ROOT": str(root),
           "LGCD_DATASET": str(tiny_pipeline.config), "DAGSTER_HOME": str(tmp_path / "home")}
    clean = run_cli(["verify"], env, timeout=600)
    assert clean.returncode == 0 and ", 0 bad" in clean.stdout, clean.stdout + clean.stderr
    damaged = 0
    for folder in storage.version_dirs(root):
        kind = (folder / integrity.KIND).read_text()
        if kind == "files" or storage.latest_version(root, [folder.parent.name]) != folder.name:
            continue
        file = sorted(folder.glob("*.parquet") if kind != "checkpoint" else
                      [folder / "checkpoint.pt"])[0]
        original = file.read_bytes()
        flip_one_byte(file)
        try:
            with pytest.raises(dg.Failure) as err:
                _load(root, folder.parent.name)
            assert f"stored version {folder.name}" in err.value.description
            assert f"file {file.name} differs" in err.value.description
            out = run_cli(["verify", "--asset", folder.parent.name], env, timeout=600)
            assert out.returncode == 1, out.stdout
            assert f"BAD {folder.parent.name}/{folder.name}" in out.stdout
            assert f"file {file.name} differs" in out.stdout
        finally:
            file.write_bytes(original)
        damaged += 1
    assert damaged >= 20  # every table and checkpoint asset of the graph
    assert _load(root, "sequences").height > 0  # restored: loads again

"""Content-addressed, immutable, atomically written versions of every intermediate.

Layout: ``<root>/<asset_key>[/<partition>]/<version>/`` where ``version`` is a
sha256 over the stored bytes. A version is first written into
``<root>/.staging/<random>/`` and then moved into place with one ``os.rename``,
so a process killed at any moment leaves either the complete version or nothing
visible; leftovers in ``.staging`` are removed by ``pipeline.garbage.collect_garbage``.

Three kinds of value are stored:

* ``polars.DataFrame``            -> ``table.parquet``
* :class:`TableFile`              -> ``table.parquet`` (a Parquet file written by its producer)
* ``dict[str, polars.DataFrame]`` -> ``<name>.parquet`` per table (a bundle)
* :class:`Checkpoint`             -> ``checkpoint.pt`` (state dict + config, loaded
  with ``torch.load(weights_only=True)`` so a tampered file cannot run code)
* :class:`FileTree`               -> an arbitrary folder (raw corpora, HF model folders)

Each version also holds ``MANIFEST.json`` (sizes, mtimes and digests of its files,
outside the hash) and :func:`read` checks the folder against it and its name before
loading (pipeline/integrity.py). A write that fails part-way (disk full, a file-size
limit) leaves nothing but an error naming the root and the cause.

This module has no Dagster imports: the IO manager adapts it, tests drive it directly.
"""

from __future__ import annotations

import hashlib
import json
import os
import resource
import shutil
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import polars as pl
import torch

from pipeline import integrity

STAGING = ".staging"
CACHE = ".cache"  # resumable work of running stages (embeddings, LLM chunks, LGCD)
LATEST = "LATEST"
# Compression and statistics are fixed so that the same frame gives the same bytes.
_PARQUET_OPTS = {"compression": "zstd", "compression_level": 3, "statistics": True}


class StorageError(RuntimeError):
    """A storage root or stored version that cannot be used, with the path in the message."""


class CorruptVersion(StorageError):
    """A stored version whose files no longer match its name (pipeline/integrity.py)."""


@dataclass
class Checkpoint:
    """A model's weights plus everything needed to rebuild and audit it.

    ``config`` and ``extra`` must hold only JSON-like values (str, int, float, bool,
    None, lists, dicts) so that the file loads under ``weights_only=True``.
    """

    state_dict: dict[str, torch.Tensor]
    config: dict[str, Any]
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class FileTree:
    """A folder of files stored as one version (e.g. a raw corpus or a model folder)."""

    path: Path


@dataclass(frozen=True)
class TableFile:
    """A Parquet table its producer wrote itself, too large to pass as a DataFrame.

    Stored and loaded like a DataFrame (``table.parquet``); a file in scratch is moved in.
    """

    path: Path


@dataclass(frozen=True)
class StagedVersion:
    """A version written to staging and hashed, waiting for :func:`commit`."""

    staging_path: Path
    version: str
    kind: str
    num_bytes: int


def ensure_root(root: str | os.PathLike) -> Path:
    """Create the storage root if needed and prove it is writable.

    Fails early with the path in the message, instead of deep inside a run.
    """
    path = Path(root).expanduser().resolve()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise StorageError(f"storage root {path} does not exist and cannot be created: {exc}") from exc
    if not path.is_dir():
        raise StorageError(f"storage root {path} is not a directory")
    probe = path / f".write-probe-{uuid.uuid4().hex}"
    try:
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise StorageError(f"storage root {path} is not writable: {exc}") from exc
    return path


def scratch_dir(root: Path) -> Path:
    """A fresh folder inside staging where a producer can write large files.

    A :class:`FileTree` pointing into it is moved, not copied, when staged.
    """
    path = Path(root) / STAGING / f"scratch-{uuid.uuid4().hex}"
    path.mkdir(parents=True)
    return path


def asset_dir(root: Path, key_path: Iterable[str], partition: str | None = None) -> Path:
    """Folder that holds every version of one asset (and partition)."""
    parts = list(key_path)
    if partition is not None:
        parts.append(_safe_component(partition))
    return Path(root).joinpath(*parts)


def _safe_component(name: str) -> str:
    if not name or name in {".", ".."} or "/" in name or "\\" in name or "\0" in name:
        raise StorageError(f"invalid partition name for a storage path: {name!r}")
    return name


# ---------------------------------------------------------------- hashing


def checkpoint_hash(ckpt: Checkpoint) -> str:
    """Hash of tensor names, dtypes, shapes and raw bytes plus the JSON config.

    ``torch.save`` bytes are not stable across clones of equal tensors, so the
    version is computed from the tensors themselves.
    """
    digest = hashlib.sha256()
    for name in sorted(ckpt.state_dict):
        tensor = ckpt.state_dict[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{tuple(tensor.shape)}|".encode())
        digest.update(tensor.view(torch.uint8).numpy().tobytes() if tensor.numel() else b"")
    digest.update(json.dumps(ckpt.config, sort_keys=True, default=str).encode())
    digest.update(json.dumps(ckpt.extra, sort_keys=True, default=str).encode())
    return digest.hexdigest()


# ---------------------------------------------------------------- write


def stage(root: Path, value: Any) -> StagedVersion:
    """Serialize ``value`` into a fresh staging folder and compute its version."""
    staging = Path(root) / STAGING / uuid.uuid4().hex
    staging.mkdir(parents=True)
    try:
        if isinstance(value, pl.DataFrame):
            value.write_parquet(staging / "table.parquet", **_PARQUET_OPTS)
            kind = "table"
        elif isinstance(value, Mapping) and value and all(
            isinstance(v, pl.DataFrame) for v in value.values()
        ):
            for name, frame in value.items():
                frame.write_parquet(staging / f"{_safe_component(name)}.parquet", **_PARQUET_OPTS)
            kind = "tables"
        elif isinstance(value, TableFile):
            _move_or_copy(root, Path(value.path), staging / "table.parquet")
            kind = "table"
        elif isinstance(value, Checkpoint):
            payload = {
                "state_dict": {k: v.detach().cpu() for k, v in value.state_dict.items()},
                "config": value.config,
                "extra": value.extra,
            }
            torch.save(payload, staging / "checkpoint.pt")
            kind = "checkpoint"
        elif isinstance(value, FileTree):
            _move_or_copy(root, Path(value.path), staging / "files")
            kind = "files"
        else:
            raise StorageError(f"cannot store a value of type {type(value).__name__}")
        (staging / integrity.KIND).write_text(kind)
        if kind == "checkpoint":
            version = checkpoint_hash(value)
            _, num_bytes = integrity.folder_hash(staging)
        else:
            version, num_bytes = integrity.folder_hash(staging)
        integrity.write_manifest(staging, version, kind)
    except StorageError:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    except Exception as exc:  # disk full, a file-size limit, an I/O error mid-write
        shutil.rmtree(staging, ignore_errors=True)
        raise _write_failure(root, "write a version", exc) from exc
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return StagedVersion(staging, version, kind, num_bytes)


def _move_or_copy(root: Path, source: Path, target: Path) -> None:
    """Move a producer's file or folder from scratch into staging; copy one from elsewhere."""
    source = source.resolve()
    if (Path(root).resolve() / STAGING) in source.parents:
        os.rename(source, target)
    elif source.is_dir():
        shutil.copytree(source, target, symlinks=False)
    else:
        shutil.copyfile(source, target)


def _write_failure(root: Path, action: str, exc: BaseException) -> StorageError:
    """A failed write as one message: the storage root, the cause, and what to check.

    polars and torch report a full disk or a file-size limit in their own words ("os error
    27", "unexpected pos"), so the message adds what the root has left and this process's
    file-size limit.
    """
    cause = f"{exc.strerror} (errno {exc.errno})" if isinstance(exc, OSError) and exc.strerror \
        else f"{type(exc).__name__}: {exc}"
    try:
        free = f"{shutil.disk_usage(root).free / 1e6:.1f} MB free there"
    except OSError:
        free = "free space unknown"
    soft, _ = resource.getrlimit(resource.RLIMIT_FSIZE)
    limit = "" if soft == resource.RLIM_INFINITY else \
        f"; this process may write files of at most {soft} bytes (RLIMIT_FSIZE)"
    return StorageError(f"could not {action} under storage root {root}: {cause}. Nothing was "
                        f"published and the previous version is unchanged ({free}{limit})")


def commit(root: Path, key_path: Iterable[str], partition: str | None, staged: StagedVersion) -> Path:
    """Move a staged version into place with one rename; reuse it if it exists.

    Content addressing makes a concurrent commit of the same content harmless:
    whichever rename wins, both writers see the same complete folder.
    """
    target_parent = asset_dir(root, key_path, partition)
    target = target_parent / staged.version
    try:
        target_parent.mkdir(parents=True, exist_ok=True)
        if target.exists():
            shutil.rmtree(staged.staging_path, ignore_errors=True)
        else:
            try:
                os.rename(staged.staging_path, target)
            except OSError:
                if not target.exists():
                    raise
                shutil.rmtree(staged.staging_path, ignore_errors=True)
        _write_latest(target_parent, staged.version)
    except OSError as exc:  # read-only or full storage between staging and the rename
        shutil.rmtree(staged.staging_path, ignore_errors=True)
        raise _write_failure(root, f"commit version {staged.version}", exc) from exc
    return target


def _write_latest(folder: Path, version: str) -> None:
    tmp = folder / f".{LATEST}.{uuid.uuid4().hex}"
    tmp.write_text(version)
    os.replace(tmp, folder / LATEST)


def write(root: Path, key_path: Iterable[str], value: Any, partition: str | None = None) -> Path:
    """Stage and commit in one call (for scripts and tests)."""
    return commit(root, key_path, partition, stage(root, value))


# ---------------------------------------------------------------- read


class _RestrictedCheckpointError(StorageError):
    pass


def read(path: Path, verify: str = "fast") -> Any:
    """Load a committed version folder after checking it (pipeline/integrity.py).

    ``verify`` is ``fast`` (tables and checkpoints rehashed, folders of files checked for
    sizes and mtimes) or ``full`` (everything rehashed). A damaged version raises
    :class:`CorruptVersion`; checkpoints refuse anything but plain tensors and containers.
    """
    path = Path(path)
    kind_file = path / integrity.KIND
    if not kind_file.is_file():
        raise StorageError(f"{path} is not a stored version (no KIND file)")
    kind = kind_file.read_text().strip()
    if kind not in ("table", "tables", "checkpoint", "files"):
        raise StorageError(f"{path} has unknown kind {kind!r}")
    try:
        integrity.check_files(path, kind, verify)
        if kind == "checkpoint":
            ckpt = load_checkpoint(path / "checkpoint.pt")
            integrity.check_checkpoint_version(path, checkpoint_hash(ckpt))
            return ckpt
    except integrity.CorruptVersionError as exc:
        raise CorruptVersion(str(exc)) from None
    if kind == "table":
        return pl.read_parquet(path / "table.parquet")
    if kind == "tables":
        return {p.stem: pl.read_parquet(p) for p in sorted(path.glob("*.parquet"))}
    return FileTree(path / "files")


def load_checkpoint(file: Path) -> Checkpoint:
    """Load a checkpoint file with ``weights_only=True``.

    A file that carries arbitrary Python objects is refused with the file named,
    never executed.
    """
    try:
        payload = torch.load(file, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises UnpicklingError/RuntimeError variants
        raise _RestrictedCheckpointError(
            f"refusing checkpoint {file}: it is not a plain weights file ({exc.__class__.__name__})"
        ) from exc
    if not isinstance(payload, dict) or "state_dict" not in payload:
        raise StorageError(f"checkpoint {file} lacks a state_dict")
    return Checkpoint(payload["state_dict"], payload.get("config", {}), payload.get("extra", {}))


def latest_version(root: Path, key_path: Iterable[str], partition: str | None = None) -> str | None:
    """Version named by the LATEST pointer of an asset, if any."""
    pointer = asset_dir(root, key_path, partition) / LATEST
    return pointer.read_text().strip() if pointer.is_file() else None


def committed_dirs(root: Path) -> Iterable[Path]:
    """Every committed version folder under root (a folder holding a KIND file), caches included."""
    for kind in root.rglob(integrity.KIND):
        folder = kind.parent
        if STAGING not in folder.relative_to(root).parts:
            yield folder


def version_dirs(root: Path, asset: str | None = None) -> list[Path]:
    """Committed version folders of every asset (or of ``asset``), sorted; caches excluded."""
    root = Path(root)
    base = root if asset is None else asset_dir(root, asset.split("/"))
    if not base.is_dir():
        return []
    return sorted(f for f in committed_dirs(base)
                  if not {STAGING, CACHE} & set(f.relative_to(root).parts))

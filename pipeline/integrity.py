"""Checks that a stored version is still what was written: manifests, rehashing, reports.

Every version folder is named by the sha256 of its content (pipeline/storage.py). A
file edited by hand, truncated by a full disk or flipped by bit rot would otherwise
load and flow downstream as if it were fine, so each version also carries
``MANIFEST.json`` (written at publish, outside the content hash): every file's size,
mtime and sha256. Two depths of check:

* ``fast`` (every load): tables and checkpoints, which are small beside the work that
  reads them, are rehashed in full: a table folder against its version, a checkpoint
  file against its manifest digest and, once loaded, its tensors against the version.
  Folders of files (LLM weights, raw corpora; hundreds of MB) are checked for the
  manifest's file list, sizes and mtimes.
* ``full`` (``app.cli verify``, or ``verify: full`` on the ``store`` resource): every
  file of every kind is rehashed.

A mismatch raises :class:`CorruptVersionError` naming the asset folder, the version and
the file that differs; nothing recomputes over it silently. A version written before
manifests existed is rehashed in full.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

MANIFEST = "MANIFEST.json"
KIND = "KIND"
LEVELS = ("fast", "full")
_CHUNK = 1 << 20


class CorruptVersionError(RuntimeError):
    """A stored version whose content no longer matches its name or manifest."""


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def content_files(folder: Path) -> list[Path]:
    """The files that make up a version's content, sorted (the manifest is not one)."""
    return sorted(p for p in folder.rglob("*")
                  if p.is_file() and not (p.parent == folder and p.name == MANIFEST))


def folder_hash(folder: Path) -> tuple[str, int]:
    """sha256 over sorted relative paths and file bytes; returns (hex, total bytes).

    The version of a table, bundle or folder of files; ``MANIFEST.json`` at the top is
    outside it, so writing the manifest never changes a version.
    """
    digest = hashlib.sha256()
    total = 0
    for file in content_files(folder):
        rel = file.relative_to(folder).as_posix()
        digest.update(rel.encode() + b"\0")
        with file.open("rb") as fh:
            while chunk := fh.read(_CHUNK):
                digest.update(chunk)
                total += len(chunk)
        digest.update(b"\0")
    return digest.hexdigest(), total


def write_manifest(folder: Path, version: str, kind: str) -> None:
    """Record every content file's size, mtime and sha256 in ``folder/MANIFEST.json``."""
    files = {}
    for file in content_files(folder):
        stat = file.stat()
        files[file.relative_to(folder).as_posix()] = {
            "size": stat.st_size, "mtime_ns": stat.st_mtime_ns, "sha256": file_sha256(file)}
    text = json.dumps({"version": version, "kind": kind, "files": files}, sort_keys=True)
    (folder / MANIFEST).write_text(text)


def _describe(folder: Path) -> str:
    """'asset <key> version <v>' from a version folder's place under the storage root."""
    return f"stored version {folder.name} of asset '{folder.parent.name}' ({folder})"


def _fail(folder: Path, what: str) -> CorruptVersionError:
    return CorruptVersionError(
        f"{_describe(folder)} is corrupt: {what}. It was not loaded; re-materialize the asset "
        "(or restore the folder), then `app.cli gc` removes the bad copy")


def _manifest(folder: Path) -> dict | None:
    path = folder / MANIFEST
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text())
        files = manifest["files"]
        if manifest.get("version") != folder.name or not isinstance(files, dict):
            raise ValueError("it names another version")
    except (ValueError, KeyError, TypeError) as exc:
        raise _fail(folder, f"{MANIFEST} is unreadable ({exc})") from exc
    return manifest


def _check_listing(folder: Path, manifest: dict, with_mtime: bool) -> None:
    files = manifest["files"]
    present = {p.relative_to(folder).as_posix(): p for p in content_files(folder)}
    missing, added = sorted(set(files) - set(present)), sorted(set(present) - set(files))
    if missing:
        raise _fail(folder, f"file {missing[0]} is missing")
    if added:
        raise _fail(folder, f"file {added[0]} was added after publish")
    for rel, entry in sorted(files.items()):
        stat = present[rel].stat()
        if stat.st_size != entry["size"]:
            raise _fail(folder, f"file {rel} has {stat.st_size} bytes, {entry['size']} were "
                        "written (truncated or edited)")
        if with_mtime and stat.st_mtime_ns != entry["mtime_ns"]:
            raise _fail(folder, f"file {rel} was modified after publish (mtime changed)")


def _check_digests(folder: Path, manifest: dict) -> None:
    for rel, entry in sorted(manifest["files"].items()):
        if file_sha256(folder / rel) != entry["sha256"]:
            raise _fail(folder, f"file {rel} differs from what was written (sha256 mismatch)")


def check_files(folder: Path, kind: str, level: str = "fast") -> None:
    """Check a version folder's files before it is read; see the module docstring."""
    if level not in LEVELS:
        raise ValueError(f"verify level {level!r}; allowed {list(LEVELS)}")
    manifest = _manifest(folder)
    if manifest is not None:
        _check_listing(folder, manifest, with_mtime=kind == "files" and level == "fast")
    if kind == "checkpoint":
        # the version is a hash of the loaded tensors (storage.checkpoint_hash), checked
        # after loading; the file digest names a damaged file before torch reads it
        if manifest is not None:
            _check_digests(folder, manifest)
        return
    if kind == "files" and level == "fast" and manifest is not None:
        return
    version, _ = folder_hash(folder)
    if version != folder.name:
        if manifest is not None:
            _check_digests(folder, manifest)
        raise _fail(folder, f"its content hashes to {version}, not to its name")


def check_checkpoint_version(folder: Path, tensor_hash: str) -> None:
    """After loading: the checkpoint's tensors and config must hash to the folder's name."""
    if tensor_hash != folder.name:
        raise _fail(folder, f"checkpoint.pt holds weights that hash to {tensor_hash}, not to "
                    "its name")

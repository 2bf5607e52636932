"""Garbage collection of the version store: unreferenced versions, stale staging and caches.

Versions are immutable and content-addressed (pipeline/storage.py), so nothing is ever
overwritten; what no latest materialization references is removed here, on demand
(``python -m app.cli gc``), never during a run.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

from pipeline.storage import CACHE, STAGING, committed_dirs


@dataclass
class GcReport:
    removed: list[Path] = field(default_factory=list)
    kept: list[Path] = field(default_factory=list)
    freed_bytes: int = 0
    cache_removed: list[Path] = field(default_factory=list)
    cache_kept: list[Path] = field(default_factory=list)
    cache_freed_bytes: int = 0


def _du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def _newest_mtime(folder: Path) -> float:
    return max([folder.stat().st_mtime, *(p.stat().st_mtime for p in folder.rglob("*"))])


def collect_garbage(
    root: Path, referenced: set[Path], dry_run: bool = False, staging_grace_s: float = 3600.0
) -> GcReport:
    """Remove versions not in ``referenced``, stale staging folders and stale cache entries.

    Staging folders younger than ``staging_grace_s`` may belong to a running
    materialization and are kept. A cache entry is one folder under ``.cache/<stage>/``
    (an embedding model's cache, one prompt set's LLM chunks, one LGCD training's resume
    point); it is kept when ``referenced`` names it or anything in it changed within the
    grace period (a running or just-killed stage that a rerun resumes from).
    """
    root = Path(root).resolve()
    referenced = {Path(p).resolve() for p in referenced}
    report = GcReport()
    for folder in list(committed_dirs(root)):
        if folder.resolve() in referenced:
            report.kept.append(folder)
            continue
        report.removed.append(folder)
        report.freed_bytes += _du(folder)
        if not dry_run:
            shutil.rmtree(folder)
    now = time.time()
    cache = root / CACHE
    for entry in sorted(cache.glob("*/*")) if cache.is_dir() else []:
        if not entry.is_dir():
            continue
        fresh = now - _newest_mtime(entry) <= staging_grace_s
        if entry.resolve() in referenced or fresh:
            report.cache_kept.append(entry)
            continue
        report.cache_removed.append(entry)
        report.cache_freed_bytes += _du(entry)
        if not dry_run:
            shutil.rmtree(entry, ignore_errors=True)
    staging = root / STAGING
    if staging.is_dir():
        for folder in staging.iterdir():
            if now - folder.stat().st_mtime > staging_grace_s:
                report.removed.append(folder)
                report.freed_bytes += _du(folder)
                if not dry_run:
                    shutil.rmtree(folder, ignore_errors=True)
    return report

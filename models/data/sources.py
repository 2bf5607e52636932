"""Identity of raw input files, so that a changed dump makes everything downstream stale."""

import hashlib
from pathlib import Path

_EDGE = 1 << 20  # bytes hashed at each end in quick mode


class SourceError(FileNotFoundError):
    """A raw input file that is missing, empty or unreadable; the message names it."""


def fingerprint_file(path: Path, full: bool = False) -> str:
    """sha256 of a file's size and bytes.

    ``full=False`` hashes the size plus the first and last MiB: a 20 GB dump is
    identified in milliseconds, and any re-download or truncation changes the
    size or the ends. ``full=True`` hashes every byte.
    """
    path = Path(path)
    if not path.is_file():
        raise SourceError(f"raw file {path} does not exist")
    size = path.stat().st_size
    if size == 0:
        raise SourceError(f"raw file {path} is empty")
    digest = hashlib.sha256(str(size).encode())
    try:
        with path.open("rb") as fh:
            if full or size <= 2 * _EDGE:
                while chunk := fh.read(1 << 20):
                    digest.update(chunk)
            else:
                digest.update(fh.read(_EDGE))
                fh.seek(size - _EDGE)
                digest.update(fh.read(_EDGE))
    except OSError as exc:
        raise SourceError(f"raw file {path} cannot be read: {exc}") from exc
    return digest.hexdigest()

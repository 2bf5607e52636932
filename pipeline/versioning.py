"""Code versions that change exactly when an asset's logic or its configuration changes.

Dagster marks an asset "Unsynced" when its code version differs from the one
recorded at its last materialization. Folding the relevant configuration into
the code version makes a config edit behave like a code edit: the asset and
its downstream become unsynced, upstream stays fresh.
"""

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _jsonable(dataclasses.asdict(value))
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


def fingerprint(*parts: Any) -> str:
    """Short stable hash of JSON-able parts (dataclasses, paths and tuples allowed)."""
    blob = json.dumps(_jsonable(list(parts)), sort_keys=True, default=str).encode()
    return hashlib.sha256(blob).hexdigest()[:12]


def code_version(logic_revision: str, *config_parts: Any) -> str:
    """``<logic revision>-<config hash>``: bump the revision when the code's output changes."""
    return f"{logic_revision}-{fingerprint(*config_parts)}"

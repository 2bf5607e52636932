"""Building a typed config section from its YAML mapping, the same way for every section.

Each section of a dataset YAML is a frozen dataclass that validates itself in
``__post_init__``. What is common to reading them lives here once: unknown keys are
named with the allowed ones, YAML lists become tuples (the dataclasses are frozen
and hashed into code versions), nested sections are built recursively, settings
inherited from the dataset (its ``seed``) fill what the mapping leaves out, and a
setting that another section owns is refused with its owner named.
"""

import dataclasses
from collections.abc import Mapping
from typing import Any, TypeVar

T = TypeVar("T")


class NestedFieldError(ValueError):
    """An error inside a sub-section; its message starts with the sub-section's name.

    The caller prefixes the section with a dot (``evaluation.emcdr: ...``), where a
    section's own field errors read ``evaluation: ...``.
    """


def from_mapping(cls: type[T], raw: Any, *, nested: Mapping[str, type] | None = None,
                 inherited: Mapping[str, Any] | None = None,
                 owned_elsewhere: Mapping[str, str] | None = None) -> T:
    """``cls`` built from ``raw`` (a mapping or None); raises ValueError naming the field.

    ``nested``: field -> dataclass of a sub-section (built the same way, absent -> default).
    ``inherited``: defaults for fields the mapping leaves out (e.g. the dataset seed).
    ``owned_elsewhere``: field -> the setting that owns it, for fields the YAML may not set.
    """
    raw = {} if raw is None else raw
    if not isinstance(raw, Mapping):
        raise ValueError(f"must be a mapping, got {raw!r}")
    allowed = {f.name for f in dataclasses.fields(cls)} - set(owned_elsewhere or {})
    for name, owner in (owned_elsewhere or {}).items():
        if name in raw:
            raise ValueError(f"{name} is set by {owner}; remove it here")
    unknown = set(raw) - allowed
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)}; allowed {sorted(allowed)}")
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}
    for name, kind in (nested or {}).items():
        if name in values:
            try:
                values[name] = from_mapping(kind, values[name])
            except (TypeError, ValueError) as exc:
                raise NestedFieldError(f"{name}: {exc}") from exc
    return cls(**{**(inherited or {}), **values})
